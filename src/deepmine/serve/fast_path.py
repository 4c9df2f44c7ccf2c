"""Model inputs for validated JSON records without building a DataFrame.

``FeaturePipeline.transform`` pays pandas' per-call overheads on every column, which dominate a single-row
request. Records validated by the request model already hold what that transform would compute first
(numbers as floats or None; labels as strings or None), so numeric and categorical columns go straight to
the encoders' array methods; datetime and text columns, and any value needing a check (an infinity), take
the pipeline's own pandas route. The result is the same Blocks, to the bit: the app checks that on sample
rows at start-up and falls back to the pipeline when it is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepmine.features.numeric import NumericEncoder, to_numbers
from deepmine.features.pipeline import Blocks, FeaturePipeline

JSON_WHERE = "the request"  # how messages name the rows of a /predict request


def _column(rows: list[dict[str, Any]], attr: str) -> list[Any]:
    return [row[attr] for row in rows]


class FastBlocks:
    """``pipeline.transform`` for rows of validated field values (``attrs`` maps column name → attribute)."""

    def __init__(self, pipeline: FeaturePipeline, attrs: dict[str, str]) -> None:
        self.pipeline = pipeline
        self.attrs = attrs

    def numeric_block(self, name: str, encoder: Any, values: list[Any]) -> np.ndarray:
        if isinstance(encoder, NumericEncoder):
            array = np.array(values, dtype="float64")  # None → NaN
            if np.isinf(array).any():  # the pipeline's own check and message (or inf → missing)
                array = to_numbers(pd.Series(array, name=name), infinite=encoder.infinite, trained=True)
            return encoder.transform_values(array)
        return encoder.transform(pd.Series(np.array(values, dtype=object), name=name), JSON_WHERE)  # a date

    def blocks(self, rows: list[dict[str, Any]]) -> Blocks:
        n = len(rows)
        pipeline = self.pipeline
        numeric = [
            self.numeric_block(name, enc, _column(rows, self.attrs[name])) for name, enc in pipeline.numeric.items()
        ]
        categorical = [
            enc.transform_keys([None if v is None else v.strip() for v in _column(rows, self.attrs[name])])
            for name, enc in pipeline.categorical.items()
        ]
        texts = [
            enc.transform(pd.Series(np.array(_column(rows, self.attrs[name]), dtype=object), name=name))
            for name, enc in pipeline.text.items()
        ]
        return Blocks(
            numeric=np.concatenate(numeric, axis=1) if numeric else np.zeros((n, 0), dtype="float32"),
            categorical=np.stack(categorical, axis=1) if categorical else np.zeros((n, 0), dtype="int64"),
            texts=texts,
        )


def same_blocks(a: Blocks, b: Blocks) -> bool:
    """Bit-for-bit equality of two sets of model inputs."""
    pairs = list(zip(a.as_list(), b.as_list(), strict=False))
    return len(a.as_list()) == len(b.as_list()) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        for x, y in pairs
    )
