"""Supervised training on a file larger than memory (``data.streaming``).

The schema, the preprocessing statistics (quantile knots, tree-based bins, vocabularies) and the validation
split come from a stated sample — the first ``data.sample_rows`` rows; the validation rows are drawn from that
sample (stratified) and left out of training. Training then reads the whole file chunk by chunk every epoch
(:class:`deepmine.data.streaming.StreamingBatches`), so memory does not grow with the number of rows.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from deepmine.config import RunConfig
from deepmine.data.schema import check_target
from deepmine.data.sources import DataSource, describe
from deepmine.data.splits import train_valid_split
from deepmine.data.streaming import ChunkReader, StreamingBatches
from deepmine.exceptions import ConfigError, DeepmineWarning
from deepmine.features.pipeline import FeaturePipeline
from deepmine.nn.ensemble import member_mean_loss
from deepmine.predictor import Predictor, to_tensors
from deepmine.tasks.supervised import (
    _check_threshold,
    _drop_missing_target,
    build_table_model,
    choose_decision,
    infer_run_schema,
    make_evaluator,
    read_valid,
    task_loss,
)
from deepmine.text.linear import LINEAR_ENCODERS
from deepmine.train.callbacks import Callback
from deepmine.train.seeding import seed_everything
from deepmine.train.trainer import Trainer

POSITION = "__deepmine_row__"


def _fingerprint(path: Path, config: RunConfig) -> str:
    settings = config.model_dump(mode="json")
    for key in ("report", "tracking"):
        settings.pop(key, None)
    settings["trainer"].pop("progress", None)
    stat = path.stat()
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def streaming_text_encoder(config: RunConfig, pipeline: FeaturePipeline, where: str) -> RunConfig:
    """Streamed text columns get the n-gram network (``auto`` → ``ngram``): the solved linear members
    (``nbsvm``, ``tfidf``) need every training row in memory at once, so naming them is a ConfigError."""
    if not pipeline.text:
        return config
    if config.text.encoder == "auto":
        return config.model_copy(update={"text": config.text.model_copy(update={"encoder": "ngram"})})
    solved = [e for e in config.text.encoders if e in LINEAR_ENCODERS]
    if solved:
        raise ConfigError(
            f"{where}: text.encoder member(s) {solved} are solved on all training rows in memory and do not "
            "stream; use text.encoder=ngram (or auto) or fit in memory (--set data.streaming=false)"
        )
    return config


def fit_streaming(
    data: DataSource,
    config: RunConfig,
    *,
    valid: DataSource | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> Predictor:
    """Sample → infer → fit preprocessing → stream-train → score on validation; return the Predictor."""
    started = time.perf_counter()
    where = describe(data)
    target = config.columns.target
    if config.columns.weight:
        raise ConfigError(
            f"{where}: columns.weight '{config.columns.weight}' is not supported while streaming; fit in memory "
            "(--set data.streaming=false) to weigh rows"
        )
    if config.model.trees == "on":
        warnings.warn(
            f"{where}: model.trees=on is ignored: trees are grown on all training rows in memory and do not "
            "stream; fit in memory (--set data.streaming=false) to blend them",
            DeepmineWarning,
            stacklevel=2,
        )
    reader = ChunkReader(data, config.data)
    sample = reader.head(config.data.sample_rows)
    check_target(sample, target, where)
    sample[POSITION] = np.arange(len(sample))
    sample = _drop_missing_target(sample, target, where, config)
    schema = infer_run_schema(sample.drop(columns=[POSITION]), config, where)
    generator = seed_everything(config.seed)
    if valid is not None:
        valid_frame, valid_where = read_valid(valid, config)
        train_sample, skip = sample, np.zeros(0, dtype="int64")
    else:
        valid_where = "the validation split (of the sample)"
        train_sample, valid_frame = train_valid_split(
            sample, target, config.trainer.valid_fraction, config.seed, stratify=schema.task in ("binary", "multiclass")
        )
        skip = valid_frame[POSITION].to_numpy()
    train_sample = train_sample.drop(columns=[POSITION])
    valid_frame = valid_frame.drop(columns=[POSITION], errors="ignore")
    pipeline = FeaturePipeline(schema, config.preprocess, config.text).fit(train_sample)
    config = streaming_text_encoder(config, pipeline, where)
    x_valid = to_tensors(pipeline.transform(valid_frame, valid_where))
    y_valid = torch.from_numpy(pipeline.encode_target(valid_frame, valid_where).copy())
    columns = [s.name for s in schema.features] + [target]
    reader.columns = columns
    multilabel = schema.task == "multilabel"
    rows = reader.count_labelled(target, unlabelled=multilabel) - len(skip)
    source = StreamingBatches(reader, pipeline, target, config.trainer.batch_size, rows, skip, unlabelled=multilabel)

    n_classes = len(schema.classes)
    # n-gram tables (with their Naive-Bayes ratios) come from the training sample, like the vocabularies
    x_sample = to_tensors(pipeline.transform(train_sample, where)) if pipeline.text else []
    y_sample = torch.from_numpy(pipeline.encode_target(train_sample, where).copy())
    model, spec = build_table_model(schema, pipeline, config, x_sample, y_sample)
    del x_sample
    rare = _check_threshold(config, schema.task, y_sample)  # class weights and shares: from the sample
    trainer = Trainer(
        model,
        member_mean_loss(model, task_loss(schema.task, config, y_sample, n_classes)),
        config.trainer,
        config.optimizer,
        generator=generator,
        evaluate=make_evaluator(schema.task, n_classes, pipeline),
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        fingerprint=_fingerprint(Path(data), config) if checkpoint_dir is not None else "",
        started=started,
    )
    history = trainer.fit(source, None, x_valid, y_valid)
    chosen = choose_decision(schema.task, config, model, spec, x_valid, y_valid)
    predictor = Predictor(schema, pipeline, model, config, spec, history=history)
    predictor.metrics = {"valid": predictor.score_frame(valid_frame, valid_where)}
    predictor.training = {
        "rows": rows,
        "valid_rows": len(valid_frame),
        "epochs": len(history),
        "best_epoch": trainer.best_epoch + 1,
        "seconds": round(trainer.elapsed(), 3),  # a resumed fit counts the time before its interruption
        "source": where,
        **({"valid_source": valid_where} if valid is not None else {}),
        "streaming": {
            "sample_rows": len(sample),
            "fitted_on": f"schema, preprocessing (n-gram tables included) and validation split from the first "
            f"{len(sample)} labelled rows",
            "chunk_rows": config.data.chunk_rows,
        },
        **rare,
    }
    if chosen is not None:
        predictor.training["threshold"] = chosen
    if config.report.enabled:
        from deepmine.report.collect import collect_insight

        whole = sample.drop(columns=[POSITION])
        predictor.insight = collect_insight(predictor, whole, train_sample, valid_frame, where, valid_where)
        predictor.training["insight_seconds"] = round(trainer.elapsed() - predictor.training["seconds"], 3)
    return predictor
