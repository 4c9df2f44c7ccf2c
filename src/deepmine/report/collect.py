"""What the report needs from fit time, recorded in the artifact's ``insight.json``: the data profile,
validation labels and outputs (for ROC, PR, calibration, residuals), example rows, the IG baseline's
categories, and permutation importance on the validation rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from deepmine.data.schema import to_native
from deepmine.explain.columns import most_frequent
from deepmine.explain.permutation import permutation_importance
from deepmine.profile import profile_frame

INSIGHT_VERSION = 1


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (missing values become null)."""
    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            value = to_native(value)
            if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA:
                clean[str(key)] = None
            elif isinstance(value, int | float | str | bool):
                clean[str(key)] = value
            else:
                clean[str(key)] = None if pd.isna(value) else str(value)
        out.append(clean)
    return out


def validation_outputs(predictor, frame: pd.DataFrame, where: str, rows: int, seed: int) -> dict[str, Any]:
    """Labels and the model's outputs on (a sample of) the validation rows."""
    total = len(frame)
    if total > rows:
        frame = frame.sample(n=rows, random_state=seed)
    y = predictor.pipeline.encode_target(frame, where)
    proba, values = predictor.predict_loaded(frame, where)
    out: dict[str, Any] = {"rows": total, "kept": len(frame)}
    if proba is not None:
        out["y"] = y.tolist()
        out["proba"] = np.round(proba, 5).tolist()
    else:
        out["y"] = np.round(predictor.pipeline.decode_target(y.astype("float64")), 6).tolist()
        out["pred"] = np.round(np.asarray(values, dtype="float64"), 6).tolist()
    return out


def collect_insight(
    predictor, frame: pd.DataFrame, train_frame: pd.DataFrame, valid_frame: pd.DataFrame, where: str, valid_where: str
) -> dict[str, Any]:
    """Everything :mod:`deepmine.report.build` reads besides the predictor itself."""
    config = predictor.config
    features = [s.name for s in predictor.schema.features]
    examples = valid_frame.head(config.report.examples)
    return {
        "version": INSIGHT_VERSION,
        "profile": profile_frame(frame, predictor.schema, where, detail=True),
        "validation": validation_outputs(predictor, valid_frame, valid_where, config.report.sample_rows, config.seed),
        "baseline_modes": most_frequent(train_frame, predictor.pipeline),
        "examples": _records(examples[[c for c in examples.columns if c in {*features, predictor.schema.target}]]),
        "importance": permutation_importance(predictor, valid_frame, seed=config.seed, where=valid_where),
    }
