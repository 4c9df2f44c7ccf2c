"""Numeric columns: median imputation with a missing flag, quantile-normal or standard scaling,
and piecewise-linear encoding over quantile bins (Gorishniy et al., 2022)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deepmine.exceptions import DataError
from deepmine.features.state import restore

N_QUANTILES = 256
NORMAL_SCALE = 2.5  # normal scores divided by this land mostly in [-1, 1]


def row_label(column: pd.Series, position: int) -> str:
    """``row N`` (1-based, counting data rows) of the value at ``position``, by the column's own index."""
    label = column.index[position]
    return f"row {label + 1}" if isinstance(label, int | np.integer) else f"row {label!r}"


def to_numbers(
    column: pd.Series, *, infinite: str = "error", trained: bool = False, missing: Sequence[str] = ()
) -> np.ndarray:
    """Parse a column as float64; NaN and the words in ``missing`` are missing, other unparseable text and (by
    default) inf raise. ``trained``: the column is read for a model already trained on numbers there, so only
    fixing the value helps."""
    if len(missing) and not pd.api.types.is_numeric_dtype(column):
        column = column.mask(column.astype(str).isin(missing))
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        first = bad.to_numpy().nonzero()[0][0]
        fix = (
            "fix the value: the model was trained on numbers in this column"
            if trained
            else "fix the value, or read the column as categories (fit: --set columns.roles.NAME=categorical)"
        )
        raise DataError(
            f"column '{column.name}' should hold numbers but {row_label(column, first)} holds "
            f"{column.iloc[first]!r}; {fix}"
        )
    array = values.to_numpy(dtype="float64", na_value=np.nan)
    infinite_rows = np.isinf(array)
    if infinite_rows.any():
        if infinite == "error":
            first = int(infinite_rows.nonzero()[0][0])
            fix = (
                "replace them"
                if trained
                else "replace them, or read them as missing (fit: --set preprocess.infinite=missing)"
            )
            raise DataError(
                f"column '{column.name}' has {int(infinite_rows.sum())} infinite value(s), the first in "
                f"{row_label(column, first)} ({array[first]}); expected finite numbers: {fix}"
            )
        array = np.where(infinite_rows, np.nan, array)
    return array


def quantile_normal_knots(finite: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots of a piecewise-linear map from values to normal scores of their training quantiles.

    Linear between knots and flat outside, so the same function is easy to express in an exported
    graph. Repeated quantiles (discrete columns) share one knot with the mean of their scores.
    """
    from scipy.special import ndtri  # imported here: prediction and serving never need scipy

    quantiles = np.quantile(finite, np.linspace(0, 1, N_QUANTILES))
    scores = ndtri((np.arange(N_QUANTILES) + 0.5) / N_QUANTILES) / NORMAL_SCALE
    knots_x, inverse = np.unique(quantiles, return_inverse=True)
    knots_y = np.bincount(inverse, weights=scores) / np.bincount(inverse)
    return knots_x.tolist(), knots_y.tolist()


def tree_edges(values: np.ndarray, target: np.ndarray, bins: int, regression: bool) -> np.ndarray:
    """Split points of a small decision tree of ``values`` against the target (Gorishniy et al., 2022)."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    tree_cls = DecisionTreeRegressor if regression else DecisionTreeClassifier
    min_leaf = max(1, len(values) // (4 * bins))
    tree = tree_cls(max_leaf_nodes=bins, min_samples_leaf=min_leaf, random_state=0)
    tree.fit(values.reshape(-1, 1), target)
    inner = tree.tree_.feature >= 0
    return np.sort(tree.tree_.threshold[inner])


class NumericEncoder:
    """Fitted state for one numeric column."""

    def __init__(
        self, scaling: str = "quantile", bins: int = 0, infinite: str = "error", missing: Sequence[str] = ()
    ) -> None:
        self.scaling = scaling
        self.bins = bins
        self.infinite = infinite
        self.missing = list(missing)  # words that stand for a missing value in this column (schema inference)
        self.median = 0.0
        self.mean = 0.0
        self.std = 1.0
        self.knots_x: list[float] = []
        self.knots_y: list[float] = []
        self.edges: list[float] = []
        self.flag_missing = False

    def fit(self, column: pd.Series, target: np.ndarray | None = None, regression: bool = False) -> NumericEncoder:
        """Fit on training values; with a target, bin edges come from a decision tree (target-aware PLE)."""
        values = to_numbers(column, infinite=self.infinite, missing=self.missing)
        finite = values[~np.isnan(values)]
        if finite.size == 0:
            finite = np.zeros(1)
        self.flag_missing = bool(np.isnan(values).any())
        self.median = float(np.median(finite))
        self.mean = float(finite.mean())
        self.std = float(finite.std()) or 1.0
        self.knots_x, self.knots_y = quantile_normal_knots(finite)
        if self.bins:
            if target is not None:
                edges = tree_edges(np.where(np.isnan(values), self.median, values), target, self.bins, regression)
            else:
                edges = np.quantile(finite, np.linspace(0, 1, self.bins + 1))
            edges = np.unique(np.concatenate([[finite.min()], edges, [finite.max()]]))
            self.edges = edges.tolist() if edges.size >= 2 else []
        return self

    @property
    def width(self) -> int:
        return 1 + int(self.flag_missing) + max(len(self.edges) - 1, 0)

    @property
    def value_columns(self) -> list[int]:
        """The block's columns that are not piecewise-linear bins: the scaled value and the missing flag. The
        bins are clipped copies of the value, which trees split on as well through the value itself."""
        return list(range(1 + int(self.flag_missing)))

    def transform(self, column: pd.Series) -> np.ndarray:
        return self.transform_values(to_numbers(column, infinite=self.infinite, trained=True, missing=self.missing))

    def transform_values(self, values: np.ndarray) -> np.ndarray:
        """:meth:`transform` for float64 values already parsed (NaN = missing, no infinities); no pandas."""
        missing = np.isnan(values)
        filled = np.where(missing, self.median, values)
        parts = [self._scale(filled)]
        if self.flag_missing:
            parts.append(missing.astype("float64"))
        if len(self.edges) >= 2:
            parts.extend(self._piecewise_linear(filled).T)
        return np.stack(parts, axis=1).astype("float32")

    def _scale(self, values: np.ndarray) -> np.ndarray:
        if self.scaling == "standard":
            return (values - self.mean) / self.std
        return np.interp(values, self.knots_x, self.knots_y)

    def _piecewise_linear(self, values: np.ndarray) -> np.ndarray:
        edges = np.asarray(self.edges)
        left, right = edges[:-1], edges[1:]
        ratio = (values[:, None] - left[None, :]) / (right - left)[None, :]
        return np.clip(ratio, 0.0, 1.0)

    def state(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NumericEncoder:
        return restore(cls(), {"missing": [], **state})  # artifacts written before `missing` existed


def stacked_value_columns(encoders: Iterable[Any]) -> list[int]:
    """The ``value_columns`` of encoders whose blocks sit side by side, as positions in the stacked block."""
    columns: list[int] = []
    offset = 0
    for encoder in encoders:
        columns.extend(offset + c for c in encoder.value_columns)
        offset += encoder.width
    return columns
