"""A table → one float matrix for unsupervised models, through the same FeaturePipeline as supervised runs.

Numeric and datetime columns are standardized (a missing flag where values are missing), categorical and
binary columns one-hot encoded; text columns are left out with a warning. Every feature remembers the
column it came from, so per-feature scores can be summed back to columns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepmine.config import PreprocessConfig
from deepmine.data.schema import Schema, infer_schema
from deepmine.exceptions import ColumnError, DataError, DeepmineWarning, did_you_mean
from deepmine.features.pipeline import FeaturePipeline


@dataclass
class Encoded:
    """The feature matrix of a table and the source column of each feature."""

    x: np.ndarray
    feature_columns: list[str]
    columns: list[str]
    schema: Schema
    pipeline: FeaturePipeline

    def per_column(self, per_feature: np.ndarray) -> np.ndarray:
        """Sum per-feature values (rows × features) into per-column values (rows × columns)."""
        index = {name: i for i, name in enumerate(self.columns)}
        out = np.zeros((per_feature.shape[0], len(self.columns)))
        for j, name in enumerate(self.feature_columns):
            out[:, index[name]] += per_feature[:, j]
        return out


def check_column(frame: pd.DataFrame, column: str | None, where: str, option: str) -> None:
    if column is not None and column not in frame.columns:
        raise ColumnError(
            f"{option} column '{column}' is not in {where}{did_you_mean(column, frame.columns)}; "
            f"columns: {list(frame.columns)}"
        )


def encode_table(
    frame: pd.DataFrame,
    where: str,
    *,
    exclude: list[str] | None = None,
    id_column: str | None = None,
    fit_frame: pd.DataFrame | None = None,
) -> Encoded:
    """Infer roles, fit the pipeline (on ``fit_frame`` when given, else on ``frame``) and encode ``frame``."""
    if len(frame) == 0:
        raise DataError(f"{where} has no rows; pass a table with at least two rows")
    exclude = [c for c in (exclude or []) if c is not None]
    fit_frame = frame if fit_frame is None else fit_frame
    features = fit_frame.drop(columns=[c for c in exclude if c in fit_frame.columns])
    schema = infer_schema(features, None, id_column=id_column, where=where)
    constant = schema.names("constant")
    text = schema.names("text")
    usable = [s for s in schema.features if s.role in ("numeric", "datetime", "categorical", "binary")]
    if not usable:
        raise DataError(
            f"{where} has no usable feature columns: every column is constant, an identifier or text "
            f"(constant: {constant}); all rows look the same, so there is nothing to detect or cluster"
        )
    if constant:
        warnings.warn(f"{where}: dropping constant column(s) {constant}", DeepmineWarning, stacklevel=2)
    if text:
        warnings.warn(f"{where}: leaving out text column(s) {text}", DeepmineWarning, stacklevel=2)
        for spec in schema.columns:
            if spec.role == "text":
                spec.role, spec.reason = "constant", "text is not used by unsupervised models"
    pipeline = FeaturePipeline(schema, PreprocessConfig(numeric_scaling="standard", numeric_bins=0)).fit(features)
    blocks = pipeline.transform(frame.drop(columns=[c for c in exclude if c in frame.columns]), where)
    parts = [blocks.numeric.astype("float64")]
    feature_columns: list[str] = []
    for name, width in zip(pipeline.numeric, pipeline.numeric_widths, strict=True):
        feature_columns += [name] * width
    for j, (name, enc) in enumerate(pipeline.categorical.items()):
        parts.append(np.eye(enc.cardinality)[blocks.categorical[:, j]])
        feature_columns += [name] * enc.cardinality
    x = np.concatenate(parts, axis=1)
    keep = x.std(axis=0) > 0 if len(x) > 1 else np.ones(x.shape[1], dtype=bool)
    if not keep.any():
        raise DataError(f"{where}: every row holds the same values; there is nothing to detect or cluster")
    x = np.ascontiguousarray(x[:, keep])
    feature_columns = [c for c, k in zip(feature_columns, keep, strict=True) if k]
    columns = list(dict.fromkeys(feature_columns))
    return Encoded(x, feature_columns, columns, schema, pipeline)
