"""Where each input column lives in the model's inputs, and the baseline row Integrated Gradients starts from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepmine.features.categorical import MISSING, UNKNOWN
from deepmine.features.datetime import DatetimeEncoder
from deepmine.features.pipeline import Blocks, FeaturePipeline

BASELINE_DOC = (
    "a typical row: the training median of each numeric column (and of each date part), the most frequent "
    "training category of each categorical column, and empty text"
)


@dataclass
class Layout:
    """Input columns in block order: numeric block slices, categorical block columns, text blocks."""

    numeric: list[tuple[str, int]]  # (column, width in the numeric block)
    categorical: list[str]
    text: list[str]

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.numeric] + self.categorical + self.text

    def numeric_slices(self) -> dict[str, slice]:
        out, offset = {}, 0
        for name, width in self.numeric:
            out[name] = slice(offset, offset + width)
            offset += width
        return out


def layout(pipeline: FeaturePipeline) -> Layout:
    return Layout(
        numeric=list(zip(pipeline.numeric, pipeline.numeric_widths, strict=True)),
        categorical=list(pipeline.categorical),
        text=list(pipeline.text),
    )


def permute_column(blocks: Blocks, where: Layout, column: str, order: np.ndarray) -> Blocks:
    """A copy of ``blocks`` with one input column's features shuffled across rows (the others untouched).
    Preprocessing works row by row per column, so this equals shuffling the raw column."""
    numeric, categorical, texts = blocks.numeric, blocks.categorical, list(blocks.texts)
    slices = where.numeric_slices()
    if column in slices:
        numeric = numeric.copy()
        numeric[:, slices[column]] = numeric[order, slices[column]]
    elif column in where.categorical:
        i = where.categorical.index(column)
        categorical = categorical.copy()
        categorical[:, i] = categorical[order, i]
    else:
        i = where.text.index(column)
        texts[i] = texts[i][order]
    return Blocks(numeric, categorical, texts)


def most_frequent(frame: pd.DataFrame, pipeline: FeaturePipeline) -> dict[str, Any]:
    """The most frequent training value of each categorical column (stored with the artifact's insight)."""
    from deepmine.features.categorical import as_keys

    out: dict[str, Any] = {}
    for name in pipeline.categorical:
        counts = as_keys(frame[name]).value_counts(dropna=True)
        out[name] = None if counts.empty else str(counts.index[0])
    return out


def baseline_blocks(pipeline: FeaturePipeline, modes: dict[str, Any] | None = None) -> Blocks:
    """One row of model inputs for the baseline (see ``BASELINE_DOC``); a category unknown to ``modes``
    (an artifact without insight) starts from the missing bucket."""
    parts = []
    for enc in pipeline.numeric.values():
        encoders = list(enc.parts.values()) if isinstance(enc, DatetimeEncoder) else [enc]
        parts.extend(e.transform_values(np.array([e.median])) for e in encoders)
    numeric = np.concatenate(parts, axis=1) if parts else np.zeros((1, 0), dtype="float32")
    codes = []
    for name, enc in pipeline.categorical.items():
        mode = (modes or {}).get(name)
        codes.append(MISSING if mode is None else enc._codes().get(mode, UNKNOWN))
    categorical = np.array([codes], dtype="int64").reshape(1, len(codes))
    texts = [np.zeros((1, enc.length), dtype="int64") for enc in pipeline.text.values()]
    return Blocks(numeric.astype("float32"), categorical, texts)


def baseline_values(pipeline: FeaturePipeline, modes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The baseline as people read it: a value per input column."""
    out: dict[str, Any] = {}
    for name, enc in pipeline.numeric.items():
        out[name] = "median date parts" if isinstance(enc, DatetimeEncoder) else enc.median
    for name in pipeline.categorical:
        mode = (modes or {}).get(name)
        out[name] = mode if mode is not None else "(missing)"
    for name in pipeline.text:
        out[name] = ""
    return out
