"""Categorical and binary columns: a vocabulary with an unknown bucket (rare categories fold into it)
and a missing bucket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

UNKNOWN, MISSING = 0, 1  # 'unknown' also holds the rare categories folded at fit time
RESERVED = 2


def as_keys(column: pd.Series) -> pd.Series:
    """Values as strings, with integral floats written as integers, so 3, 3.0 and '3' agree."""
    if pd.api.types.is_float_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        integral = np.isfinite(values) & (np.mod(values, 1) == 0)
        text = np.where(integral, np.char.mod("%d", np.nan_to_num(values).astype(np.int64)), values.astype(str))
        keys = pd.Series(text, index=column.index, dtype=object)
    else:
        keys = column.astype(object).map(lambda v: v if isinstance(v, str) else str(v))
        keys = keys.str.strip()
    return keys.where(column.notna(), None)


class CategoricalEncoder:
    """Fitted vocabulary for one column: index 0 other (rare or unseen), 1 missing, then the categories."""

    def __init__(self, min_count: int = 5, max_categories: int = 1000) -> None:
        self.min_count = min_count
        self.max_categories = max_categories
        self.categories: list[str] = []

    def fit(self, column: pd.Series) -> CategoricalEncoder:
        counts = as_keys(column).value_counts(dropna=True)
        kept = counts[counts >= self.min_count]
        if kept.empty:  # tiny tables: keep everything rather than fold every value into 'rare'
            kept = counts
        self.categories = sorted(kept.head(self.max_categories).index.tolist())
        self._lookup = None
        return self

    @property
    def cardinality(self) -> int:
        return RESERVED + len(self.categories)

    def _codes(self) -> dict[str, int]:
        lookup = getattr(self, "_lookup", None)
        if lookup is None:
            lookup = self._lookup = {c: i + RESERVED for i, c in enumerate(self.categories)}
        return lookup

    def transform(self, column: pd.Series) -> np.ndarray:
        lookup = self._codes()
        keys = as_keys(column)
        codes = keys.map(lookup)
        codes = codes.where(keys.notna(), MISSING).fillna(UNKNOWN)
        return codes.to_numpy(dtype="int64")

    def transform_keys(self, keys: Sequence[str | None]) -> np.ndarray:
        """:meth:`transform` for keys already made by :func:`as_keys` (stripped strings, None = missing); no pandas."""
        lookup = self._codes()
        codes = (MISSING if key is None else lookup.get(key, UNKNOWN) for key in keys)
        return np.fromiter(codes, dtype="int64", count=len(keys))

    def unseen(self, column: pd.Series) -> list[str]:
        """Distinct values that were not in the training data (they map to 'unknown')."""
        keys = as_keys(column).dropna()
        lookup = set(self.categories)
        return sorted({k for k in keys.unique() if k not in lookup})

    def state(self) -> dict[str, Any]:
        return {"min_count": self.min_count, "max_categories": self.max_categories, "categories": self.categories}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoricalEncoder:
        encoder = cls(state["min_count"], state["max_categories"])
        encoder.categories = list(state["categories"])
        return encoder
