"""Fit an image classifier: read → split (stratified) → fit preprocessing → build the net → Trainer."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepmine.exceptions import DataError
from deepmine.images.config import ImageRunConfig
from deepmine.images.insight import image_insight
from deepmine.images.predictor import ImagePredictor
from deepmine.images.sources import ImageData, load_images
from deepmine.images.transforms import fit_spec
from deepmine.train.callbacks import Callback
from deepmine.train.seeding import seed_everything
from deepmine.train.trainer import Trainer


def split_index(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation positions, stratified by class when every class allows it."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    n_valid = max(1, round(fraction * len(labels)))
    stratify = labels if counts.min() >= 2 and n_valid >= len(counts) else None
    train, valid = train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(valid)


def make_evaluator(n_classes: int):
    """Validation loss and metrics each epoch, from a validation ImageBatches."""
    from deepmine.evaluate.metrics import classification_metrics

    def evaluate(model: nn.Module, valid: Any, _target: Any) -> dict[str, float]:
        model.eval()
        outs, ys = [], []
        with torch.inference_mode():
            for inputs, y in valid.epoch(None):
                outs.append(model(*inputs).float())
                ys.append(y)
        logits, target = torch.cat(outs), torch.cat(ys)
        proba = torch.softmax(logits, dim=1).numpy()
        return {
            "loss": float(nn.functional.cross_entropy(logits, target)),
            **classification_metrics(target.numpy(), proba, n_classes),
        }

    return evaluate


def _fingerprint(data: ImageData, config: ImageRunConfig) -> str:
    settings = config.model_dump(mode="json")
    settings["trainer"].pop("progress", None)
    settings.pop("tracking", None)  # where the run is recorded does not change training
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update("\n".join(data.names).encode())
    if data.labels is not None:
        digest.update(pd.Series(data.labels).astype(str).str.cat(sep="\n").encode())
    if data.array is not None:
        digest.update(hashlib.sha256(np.ascontiguousarray(data.array).data).digest())
    return digest.hexdigest()


def _tabular_pipeline(train: ImageData, target: str, config: ImageRunConfig):
    """A FeaturePipeline over the table's other columns, or None when none of them feeds a model."""
    if train.table is None or train.table.shape[1] == 0:
        return None
    from deepmine.data.schema import infer_schema
    from deepmine.features.pipeline import FeaturePipeline

    frame = train.table.copy()
    frame[target] = pd.Series(train.labels).astype(str).to_numpy()
    schema = infer_schema(
        frame,
        target,
        task="multiclass",
        roles=config.columns.roles,
        drop=config.columns.drop,
        id_column=config.columns.id,
        where=train.where,
    )
    if not schema.features:
        return None
    return FeaturePipeline(schema, config.preprocess).fit(frame)


def fit_images(
    data: Any,
    config: ImageRunConfig,
    *,
    labels: Any = None,
    valid: Any = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    cache_dir: Path | None = None,
) -> ImagePredictor:
    """Train an image classifier on ``data``; validation is carved from it unless ``valid`` is given.

    Callbacks reach the :class:`ImagePredictor` being trained as ``trainer.predictor`` (to score test data per
    epoch, for example); ``cache_dir`` holds the decoded-image cache when ``images.cache`` is on."""
    started = time.perf_counter()
    target = config.columns.target or "label"
    images = load_images(data, config.images, labels=labels, target=target, read=config.data)
    if images.labels is None:
        raise DataError(
            f"{images.where} has no labels: use one sub-folder per class, a table with a --target column, or an "
            "IDX/NPZ file with labels"
        )
    keys = pd.Series(images.labels).astype(str).to_numpy()
    classes_raw = pd.unique(pd.Series(images.labels))
    classes = sorted(classes_raw.tolist(), key=lambda c: (str(type(c)), c)) if len(classes_raw) else []
    if len(classes) < 2:
        raise DataError(f"{images.where} has {len(classes)} class(es) ({classes}); classification needs at least 2")
    generator = seed_everything(config.seed)
    if valid is not None:
        train, valid_images = images, load_images(valid, config.images, target=target, read=config.data)
    else:
        train_idx, valid_idx = split_index(keys, config.trainer.valid_fraction, config.seed)
        train, valid_images = images.subset(train_idx), images.subset(valid_idx)
    spec = fit_spec(train, config.images, config.seed)
    tabular = _tabular_pipeline(train, target, config)
    model_spec: dict[str, Any] = {
        "name": "cnn" if config.model.name == "auto" else config.model.name,
        "layers": config.model.layers,
        "channels": spec.channels,
        "height": spec.height,
        "width": spec.width,
        "classes": len(classes),
        "tabular": None
        if tabular is None
        else {
            "numeric_widths": tabular.numeric_widths,
            "cardinalities": tabular.cardinalities,
            "text_cardinalities": tabular.text_cardinalities,
        },
    }
    from deepmine.nn.vision import build_image_model

    model = build_image_model(model_spec, config.model)
    model_spec["parameters"] = sum(p.numel() for p in model.parameters())
    predictor = ImagePredictor(spec, model, config, model_spec, classes, tabular=tabular)
    y_train = torch.from_numpy(predictor.encode_labels(train.labels, train.where))
    y_valid = torch.from_numpy(predictor.encode_labels(valid_images.labels, valid_images.where))
    train_cache = None
    if config.images.cache:
        import tempfile

        train_cache = cache_dir if cache_dir is not None else Path(tempfile.gettempdir()) / "deepmine-image-cache"
    source = predictor.batches(train, y_train, cache=train_cache)
    source.train, source.workers = True, config.images.workers
    source.batch_size = (
        len(train) if config.trainer.batch_size == "full" else min(config.trainer.batch_size, len(train))
    )
    valid_source = predictor.batches(valid_images, y_valid, cache=train_cache)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.trainer.label_smoothing)
    trainer = Trainer(
        model,
        loss_fn,
        config.trainer,
        config.optimizer,
        generator=generator,
        evaluate=make_evaluator(len(classes)),
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        fingerprint=_fingerprint(images, config) if checkpoint_dir is not None else "",
    )
    trainer.predictor = predictor  # callbacks can score other data with the model being trained
    history = trainer.fit(source, None, valid_source, None)
    fit_seconds = time.perf_counter() - started
    predictor.history = history
    valid_metrics, valid_y, valid_proba = predictor.scored(valid_images)
    predictor.metrics = {"valid": valid_metrics}
    predictor.insight = image_insight(predictor, valid_images, valid_y, valid_proba, config.seed)
    predictor.training = {
        "rows": len(train),
        "valid_rows": len(valid_images),
        "epochs": len(history),
        "best_epoch": trainer.best_epoch + 1,
        "seconds": round(fit_seconds, 3),
        "source": images.where,
        "skipped_images": len(images.skipped),
        "path_column": images.path_column if images.table is not None else None,
    }
    return predictor
