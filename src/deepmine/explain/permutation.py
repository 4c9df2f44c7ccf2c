"""Permutation importance per input column: how much the task's metric drops when one column is shuffled.

Without labels it measures how much the model's own predictions change instead."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from deepmine.explain.columns import layout, permute_column
from deepmine.features.pipeline import Blocks

MAX_ROWS = 2000


def _outputs(predictor, blocks: Blocks) -> np.ndarray:
    proba, values = predictor.predict_blocks(blocks)
    return proba if proba is not None else np.asarray(values, dtype="float64")


def _metric(predictor, y: np.ndarray) -> tuple[str, Any]:
    """The task's metric as ``(name, score(outputs))``, oriented so that higher is better. Accuracy and micro F1
    score the classes and labels as predict decides them (``Predictor.decide``: a binary decision threshold,
    per-label thresholds of a multilabel model)."""
    from sklearn import metrics as skm

    task, decide = predictor.task, predictor.decide
    if task == "binary" and len(np.unique(y)) == 2:
        return "roc_auc", lambda out: skm.roc_auc_score(y, out[:, 1])
    if task in ("binary", "multiclass"):
        return "accuracy", lambda out: skm.accuracy_score(y, decide(out))
    if task == "multilabel":
        return "micro_f1", lambda out: skm.f1_score(y, decide(out), average="micro", zero_division=0)
    return "rmse", lambda out: -float(np.sqrt(np.mean((out - y) ** 2)))


def _change(task: str, reference: np.ndarray) -> tuple[str, Any]:
    """Mean change of the predictions (total variation of the probabilities, or |Δ value|), negated."""
    if task in ("binary", "multiclass"):
        return "prediction_change", lambda out: -float(np.abs(out - reference).sum(axis=1).mean() / 2)
    return "prediction_change", lambda out: -float(np.abs(out - reference).mean())


def permutation_importance(
    predictor,
    frame: pd.DataFrame,
    *,
    repeats: int = 3,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
    where: str = "the data",
) -> dict[str, Any]:
    """Importance of each input column on up to ``max_rows`` rows of ``frame`` (a random sample beyond).

    With the target present (rows with a label), importance is the drop of the task's metric — ROC AUC
    (binary), accuracy (multiclass), micro F1 (multilabel, at the model's label thresholds), RMSE (regression,
    as its increase) — when the column is shuffled;
    otherwise it is the mean change of the model's predictions."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small forward passes: one thread is as fast and does not fight other work
    try:
        return _permutation_importance(predictor, frame, repeats, max_rows, seed, where)
    finally:
        torch.set_num_threads(threads)


def _permutation_importance(predictor, frame, repeats, max_rows, seed, where) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    target = predictor.schema.target
    labelled = target in frame.columns and frame[target].notna().any()
    if labelled:
        frame = frame[frame[target].notna()]
    if len(frame) > max_rows:
        frame = frame.iloc[np.sort(rng.choice(len(frame), max_rows, replace=False))]
    frame = frame.reset_index(drop=True)
    pipeline = predictor.pipeline
    blocks = pipeline.transform(frame, where)
    reference = _outputs(predictor, blocks)
    if labelled:
        y = pipeline.encode_target(frame, where)
        if predictor.task == "regression":
            y = pipeline.decode_target(y.astype("float64"))
        name, score = _metric(predictor, y)
    else:
        name, score = _change(predictor.task, reference)
    base = score(reference)
    where_cols = layout(pipeline)
    results = []
    for column in where_cols.columns:
        drops = []
        for _ in range(repeats):
            shuffled = permute_column(blocks, where_cols, column, rng.permutation(len(frame)))
            drops.append(base - score(_outputs(predictor, shuffled)))
        results.append({"column": column, "importance": float(np.mean(drops)), "std": float(np.std(drops))})
    results.sort(key=lambda r: -r["importance"])
    return {
        "method": "permutation",
        "mode": "metric" if labelled else "prediction_change",
        "metric": name,
        "baseline_score": abs(base) if name in ("rmse", "prediction_change") else base,
        "rows": len(frame),
        "repeats": repeats,
        "columns": results,
    }
