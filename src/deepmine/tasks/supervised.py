"""Supervised learning on tables: binary, multiclass, multilabel and regression."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from deepmine.config import RunConfig
from deepmine.data.schema import Schema, check_target, column_settings, infer_schema, infer_task
from deepmine.data.sources import DataSource, describe, load_table
from deepmine.data.splits import split_positions
from deepmine.evaluate.metrics import classification_metrics, regression_metrics
from deepmine.exceptions import DeepmineWarning
from deepmine.features.pipeline import FeaturePipeline
from deepmine.nn.ensemble import build_model, member_mean_loss
from deepmine.predictor import Predictor, forward_in_chunks, to_tensors
from deepmine.tasks.row_weights import RowWeightedLoss, pack, read_weights, split_weights, unpack, valid_loss_weights
from deepmine.tasks.tree_member import TreeRows, add_tree_member, regrow_on_all_rows, wants_trees
from deepmine.text.prepare import (
    batch_source,
    describe_text,
    install_text,
    resolve_text_encoder,
    text_spec,
    text_tables,
)
from deepmine.train import distributed
from deepmine.train.callbacks import Callback
from deepmine.train.seeding import seed_everything
from deepmine.train.trainer import Trainer

SMALL_VALID = 10  # validation rows below which fit warns that its figures mean little


class RegressionLoss(nn.Module):
    """Mean squared error on a single-output head."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output.squeeze(-1), target)


def make_evaluator(task: str, n_classes: int, pipeline: FeaturePipeline, weighted_dtype: torch.dtype | None = None):
    """Validation metrics (with ``loss``) computed each epoch. With ``weighted_dtype`` the validation target comes
    :func:`pack`-ed with row weights: the loss (what early stopping watches) is weighted, the metrics are not."""

    multilabel = task == "multilabel"
    weighted_loss = None  # built once, not every epoch
    if weighted_dtype is not None:
        plain = {"multilabel": nn.BCEWithLogitsLoss, "regression": RegressionLoss}.get(task, nn.CrossEntropyLoss)()
        weighted_loss = RowWeightedLoss(plain, weighted_dtype, multilabel)

    def evaluate(model: nn.Module, inputs: Sequence[torch.Tensor], target: torch.Tensor) -> dict[str, float]:
        outputs = forward_in_chunks(model, list(inputs)).float()
        if weighted_loss is not None:
            loss = float(weighted_loss(outputs, target))
            return {**evaluate_plain(outputs, unpack(target, weighted_dtype, multilabel)[0]), "loss": loss}
        return evaluate_plain(outputs, target)

    def evaluate_plain(outputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        if task == "multilabel":
            from deepmine.tasks.multilabel import decide, multilabel_metrics

            loss = float(nn.functional.binary_cross_entropy_with_logits(outputs, target))
            decided = decide(torch.sigmoid(outputs).numpy())
            return {"loss": loss, **multilabel_metrics(target.numpy(), decided)}
        if task == "regression":
            pred = outputs.squeeze(-1)
            loss = float(nn.functional.mse_loss(pred, target))
            scale = pipeline.decode_target
            return {
                "loss": loss,
                **regression_metrics(scale(target.numpy().astype("float64")), scale(pred.numpy().astype("float64"))),
            }
        loss = float(nn.functional.cross_entropy(outputs, target))
        proba = torch.softmax(outputs, dim=1).numpy()
        return {"loss": loss, **classification_metrics(target.numpy(), proba, n_classes)}

    return evaluate


def _drop_missing_target(frame: pd.DataFrame, target: str, where: str, config: RunConfig | None = None) -> pd.DataFrame:
    """``frame`` without the rows whose target is missing (kept for multilabel: an empty value = no labels)."""
    missing = frame[target].isna()
    if missing.any() and not _is_multilabel(frame, config):
        warnings.warn(
            f"{where}: dropping {int(missing.sum())} row(s) with no value in target '{target}'",
            DeepmineWarning,
            stacklevel=3,
        )
        frame = frame[~missing]  # the index keeps each row's number in the file for later messages
    return frame


def _is_multilabel(frame: pd.DataFrame, config: RunConfig | None) -> bool:
    if config is None:
        return False
    target = config.columns.target
    return infer_task(frame[target], target, config.task, config.columns.label_sep)[0] == "multilabel"


def _check_threshold(config: RunConfig, task: str | None, y_train: torch.Tensor) -> dict[str, Any]:
    """Validate ``trainer.threshold``; for a binary task, the positive share and (under 5 %) AP as headline."""
    from deepmine.evaluate.thresholds import RARE_SHARE, parse_threshold

    parse_threshold(config.trainer.threshold)
    if config.trainer.threshold != "argmax" and task not in ("binary", "multilabel"):
        from deepmine.exceptions import ConfigError

        raise ConfigError(
            f"trainer.threshold '{config.trainer.threshold}' needs a binary target; this task is {task} "
            "(leave trainer.threshold=argmax); per-label thresholds need a multilabel target"
        )
    if task != "binary":
        return {}
    share = float(y_train.float().mean())
    if share < RARE_SHARE:
        return {"positive_share": round(share, 6), "headline_metric": "average_precision"}
    return {"positive_share": round(share, 6)}


def task_loss(task: str, config: RunConfig, y_train: torch.Tensor, n_classes: int) -> nn.Module:
    """The training loss: BCE per label (multilabel), cross-entropy or focal loss with optional balanced class
    weights from ``y_train`` (classification), squared error (regression)."""
    if task == "multilabel":
        from deepmine.tasks.multilabel import multilabel_loss

        return multilabel_loss(config, y_train)
    if task == "regression":
        return RegressionLoss()
    weight = None
    if config.trainer.class_weight == "balanced":
        present = np.unique(y_train.numpy())
        w = np.ones(n_classes)
        w[present] = compute_class_weight("balanced", classes=present, y=y_train.numpy())
        weight = torch.tensor(w, dtype=torch.float32)
    if config.trainer.loss == "focal":
        from deepmine.nn.losses import FocalLoss

        return FocalLoss(weight=weight)
    return nn.CrossEntropyLoss(weight=weight)


def choose_decision(
    task: str,
    config: RunConfig,
    model: nn.Module,
    spec: dict[str, Any],
    x_valid: Sequence[torch.Tensor],
    y_valid: torch.Tensor,
) -> dict[str, Any] | None:
    """Apply ``trainer.threshold`` on the validation rows: a binary decision threshold or per-label thresholds
    (multilabel) go into ``spec``; return the chosen binary threshold's record (``None`` otherwise)."""
    if config.trainer.threshold == "argmax":
        return None
    if task == "binary":
        from deepmine.evaluate.thresholds import choose_threshold

        valid_proba = torch.softmax(forward_in_chunks(model, x_valid).float(), dim=1)[:, 1].numpy()
        chosen = choose_threshold(y_valid.numpy(), valid_proba, config.trainer.threshold)
        spec["decision_threshold"] = chosen["threshold"]
        return chosen
    if task == "multilabel":
        from deepmine.tasks.multilabel import tune_thresholds

        valid_proba = torch.sigmoid(forward_in_chunks(model, x_valid).float()).numpy()
        spec["label_thresholds"] = tune_thresholds(y_valid.numpy(), valid_proba, config.trainer.threshold)
    return None


def fingerprint(frame: pd.DataFrame, config: RunConfig) -> str:
    """Identifies the data and settings a checkpoint belongs to."""
    settings = config.model_dump(mode="json")
    settings["trainer"].pop("progress", None)
    settings.pop("report", None)  # what the report records does not change training
    settings.pop("tracking", None)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(np.asarray(pd.util.hash_pandas_object(frame, index=False)).tobytes())
    return digest.hexdigest()


def infer_run_schema(frame: pd.DataFrame, config: RunConfig, where: str) -> Schema:
    """The schema of ``frame`` under the run's task and column settings."""
    return infer_schema(frame, config.columns.target, task=config.task, where=where, **column_settings(config.columns))


def read_valid(valid: Any, config: RunConfig) -> tuple[pd.DataFrame, str]:
    """The user's validation table (rows without a target dropped) and how to name it in messages."""
    where = describe(valid)
    frame = load_table(valid, config.data)
    check_target(frame, config.columns.target, where)
    return _drop_missing_target(frame, config.columns.target, where, config), where


def build_table_model(
    schema: Schema, pipeline: FeaturePipeline, config: RunConfig, x_train: Sequence[torch.Tensor], y_train: torch.Tensor
) -> tuple[nn.Module, dict[str, Any]]:
    """The model and its spec (what rebuilds it from JSON): n-gram tables and solved linear text members from
    the training rows ``x_train`` / ``y_train``, installed into the text encoders."""
    n_classes = len(schema.classes)
    tables = text_tables(pipeline, config, x_train, y_train, schema.task, n_classes)
    spec: dict[str, Any] = {
        "name": config.model.name,
        "task": schema.task,
        "numeric_widths": pipeline.numeric_widths,
        "cardinalities": pipeline.cardinalities,
        "text_cardinalities": pipeline.text_cardinalities,
        "out_features": 1 if schema.task == "regression" else n_classes,
        **text_spec(pipeline, config, tables),
    }
    model = build_model(spec, config.model)
    install_text(model, pipeline, config, tables)
    spec["parameters"] = sum(p.numel() for p in model.parameters())
    return model, spec


def fit_table(
    data: DataSource,
    config: RunConfig,
    *,
    valid: DataSource | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> Predictor:
    """Load → infer → split → preprocess → train → score on validation; return the Predictor."""
    from deepmine.data.streaming import should_stream

    if should_stream(data, config.data):  # larger than memory: train from chunks read from disk
        from deepmine.tasks.streaming import fit_streaming

        return fit_streaming(
            data, config, valid=valid, checkpoint_dir=checkpoint_dir, resume=resume, callbacks=callbacks
        )
    started = time.perf_counter()
    where = describe(data)
    frame = load_table(data, config.data)
    target = config.columns.target
    check_target(frame, target, where)
    frame = _drop_missing_target(frame, target, where, config)
    schema = infer_run_schema(frame, config, where)
    weights = None  # read once per fit, in file order (the first bad weight named), before the split hides rows
    if config.columns.weight:
        weights = read_weights(frame, config.columns.weight, where)
    generator = seed_everything(config.seed)
    split = None
    if valid is not None:
        valid_frame, valid_where = read_valid(valid, config)
        train_frame = frame
    else:
        valid_where = "the validation split"
        split = split_positions(
            frame, target, config.trainer.valid_fraction, config.seed, stratify=schema.task in ("binary", "multiclass")
        )
        train_frame, valid_frame = (frame.iloc[rows].reset_index(drop=True) for rows in split)
    if len(valid_frame) < SMALL_VALID:
        warnings.warn(
            f"{valid_where} holds only {len(valid_frame)} row(s); its metrics and early stopping are unreliable "
            "(classes it lacks cannot be measured) — add rows or pass a larger --valid",
            DeepmineWarning,
            stacklevel=2,
        )
    pipeline = FeaturePipeline(schema, config.preprocess, config.text).fit(train_frame)
    config = resolve_text_encoder(config, pipeline)
    x_train = to_tensors(pipeline.transform(train_frame, where))
    y_train = torch.from_numpy(pipeline.encode_target(train_frame, where).copy())
    x_valid = to_tensors(pipeline.transform(valid_frame, valid_where))
    y_valid = torch.from_numpy(pipeline.encode_target(valid_frame, valid_where).copy())

    weights, valid_weights = split_weights(weights, config.columns.weight, split, valid_frame, where, valid_where)

    n_classes = len(schema.classes)
    model, spec = build_table_model(schema, pipeline, config, x_train, y_train)
    rare = _check_threshold(config, schema.task, y_train)
    loss = task_loss(schema.task, config, y_train, n_classes)
    if weights is not None:
        loss = RowWeightedLoss(loss, y_train.dtype, multilabel=schema.task == "multilabel")
    trainer = Trainer(
        model,
        member_mean_loss(model, loss),
        config.trainer,
        config.optimizer,
        generator=generator,
        evaluate=make_evaluator(schema.task, n_classes, pipeline, None if weights is None else y_valid.dtype),
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        fingerprint=fingerprint(frame, config) if checkpoint_dir is not None else "",
        started=started,
    )
    target, valid_target = y_train, y_valid
    if weights is not None:
        measured = valid_loss_weights(valid_weights)  # the validation loss unweighted when its rows all weigh 0
        target = pack(y_train, weights)
        valid_target = pack(y_valid, torch.ones(len(y_valid)) if measured is None else measured)
    history = trainer.fit(batch_source(config, x_train, target) or x_train, target, x_valid, valid_target)
    if distributed.is_distributed() and distributed.rank() != 0:  # only rank 0 saves: trees, metrics, report
        return Predictor(schema, pipeline, model, config, spec, history=history)
    trees = tree_rows = None
    enough_valid = config.model.trees == "on" or len(valid_frame) >= SMALL_VALID  # else the weight is noise
    if enough_valid and wants_trees(config, pipeline, schema.task, n_classes, len(train_frame)):
        columns = pipeline.tree_columns
        tree_rows = TreeRows(
            x_train, y_train, x_valid, y_valid, schema.task, n_classes, config, columns, weights, valid_weights
        )
        model, trees = add_tree_member(model, spec, tree_rows)
    chosen = choose_decision(schema.task, config, model, spec, x_valid, y_valid)
    predictor = Predictor(schema, pipeline, model, config, spec, history=history)
    predictor.metrics = {"valid": predictor.score_frame(valid_frame, valid_where)}
    predictor.training = {
        "rows": len(train_frame),
        "valid_rows": len(valid_frame),
        "epochs": len(history),
        "best_epoch": trainer.best_epoch + 1,
        "seconds": round(trainer.elapsed(), 3),  # a resumed fit counts the time before its interruption
        "source": where,
        **rare,
    }
    if valid is not None:
        predictor.training["valid_source"] = valid_where
    if pipeline.text:
        predictor.training["text_columns"] = describe_text(pipeline)
    if chosen is not None:
        predictor.training["threshold"] = chosen
    if trees is not None:
        predictor.training["trees"] = trees
    if config.report.enabled:
        from deepmine.report.collect import collect_insight

        predictor.insight = collect_insight(predictor, frame, train_frame, valid_frame, where, valid_where)
        predictor.training["insight_seconds"] = round(trainer.elapsed() - predictor.training["seconds"], 3)
    if tree_rows is not None and valid is None and trees["weight"]:  # metrics and report above: honest trees
        trees["regrown_on_rows"] = regrow_on_all_rows(model, spec, tree_rows, trees["rounds"])
    return predictor
