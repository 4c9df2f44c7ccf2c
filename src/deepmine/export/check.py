"""Rows to verify an export on, and the predictor's own answers for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from deepmine.features.numeric import NumericEncoder

if TYPE_CHECKING:
    from deepmine.features.pipeline import FeaturePipeline
    from deepmine.predictor import Predictor

UNSEEN = "__deepmine_unseen__"


def _numeric_sample(enc: NumericEncoder, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Values spread like the training data (uniform within random quantile segments), plus values
    below and above the training range and missing values."""
    knots = np.asarray(enc.knots_x or [enc.median], dtype="float64")
    if len(knots) >= 2:
        segment = rng.integers(0, len(knots) - 1, rows)
        values = knots[segment] + rng.random(rows) * (knots[segment + 1] - knots[segment])
        on_knot = rng.random(rows) < 0.2  # exactly on a knot: segment boundaries
        values[on_knot] = rng.choice(knots, int(on_knot.sum()))
    else:
        values = np.full(rows, knots[0])
    span = max(float(knots[-1] - knots[0]), abs(float(knots[0])), 1.0)
    draw = rng.random(rows)
    values = np.where(draw < 0.04, knots[0] - rng.random(rows) * span, values)
    values = np.where((draw >= 0.04) & (draw < 0.08), knots[-1] + rng.random(rows) * span, values)
    values = np.where((draw >= 0.08) & (draw < 0.13), np.nan, values)
    # the graph takes float32 inputs: use values float32 holds exactly, so the check measures the graph
    return values.astype("float32").astype("float64")


def sample_rows(predictor: Predictor, rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Raw rows generated from the predictor's fitted pipeline (see :func:`pipeline_rows`)."""
    return pipeline_rows(predictor.pipeline, rows, seed)


def pipeline_rows(pipeline: FeaturePipeline, rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Raw rows generated from a fitted pipeline: every numeric range (and beyond it), every
    category, missing values, and a value never seen in training."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for name, enc in pipeline.numeric.items():
        columns[name] = _numeric_sample(enc, rows, rng)
    for name, enc in pipeline.categorical.items():
        choices = np.asarray(list(enc.categories) or [UNSEEN], dtype=object)
        values = rng.choice(choices, rows)
        draw = rng.random(rows)
        values[draw < 0.05] = None
        values[(draw >= 0.05) & (draw < 0.1)] = UNSEEN
        columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def reference_outputs(predictor: Predictor, frame: pd.DataFrame) -> np.ndarray:
    """What the exported graph must reproduce: probabilities (classifiers) or values (regression)."""
    if predictor.is_classifier:
        return np.asarray(predictor.predict_proba(frame), dtype="float64")
    return np.asarray(predictor.predict(frame), dtype="float64")


def max_abs_diff(expected: np.ndarray, got: np.ndarray) -> float:
    """Largest absolute difference; infinite when shapes differ or anything is NaN."""
    got = np.asarray(got, dtype="float64").reshape(expected.shape) if got.size == expected.size else None
    if got is None:
        return float("inf")
    diff = np.abs(expected - got)
    if diff.size == 0:
        return 0.0
    return float("inf") if np.isnan(diff).any() else float(diff.max())
