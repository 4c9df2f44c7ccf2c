"""The whole tabular pipeline as one ``nn.Module``: raw numbers and category codes in, probabilities out.

Inputs (only the kinds the model has):

- ``numeric``: float32 ``(rows, numeric columns)``, raw values in the pipeline's numeric order, NaN = missing;
- ``categorical``: int64 ``(rows, categorical columns)``, codes from each column's vocabulary
  (0 = other/unseen, 1 = missing, 2+ = the categories in order); out-of-range codes count as 0.

In the graph: median imputation, missing flags, quantile-normal (or standard) scaling, piecewise-linear
bins, the model, then softmax probabilities (classifiers) or the value on the target's scale (regression).
Everything is built from ops ONNX has (Where, IsNaN, Gather, Min/Max, Div, MatMul ...): the piecewise-linear
quantile map finds each value's segment with an unrolled branch-free binary search over the knots.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepmine.exceptions import ExportError
from deepmine.features.datetime import DatetimeEncoder
from deepmine.features.numeric import NumericEncoder, to_numbers

if TYPE_CHECKING:
    from deepmine.data.schema import Schema
    from deepmine.features.pipeline import FeaturePipeline
    from deepmine.predictor import Predictor

SUPPORTED_ROLES = ("numeric", "categorical", "binary")


def check_exportable(predictor: Predictor) -> None:
    """Raise :class:`ExportError` naming every column whose role the exported graph cannot take."""
    if predictor.task not in ("binary", "multiclass", "regression"):
        raise ExportError(f"cannot export a {predictor.task!r} model; export supports binary, multiclass, regression")
    check_table_columns(predictor.schema)


def check_table_columns(schema: Schema, whole_model: bool = True) -> None:
    """Raise :class:`ExportError` naming every column whose role the exported graph cannot take (``whole_model``:
    these columns are all the model reads, not the table part of an image model)."""
    bad = [s for s in schema.features if s.role not in SUPPORTED_ROLES]
    if bad and whole_model and len(bad) == len(schema.features):
        roles = sorted({s.role for s in bad})
        raise ExportError(
            f"cannot export: this model reads only {' and '.join(roles)} column(s) "
            f"({', '.join(repr(s.name) for s in bad)}), which ONNX/TorchScript export does not take; serve it with "
            "`deepmine serve` or predict with `deepmine predict` instead"
        )
    if bad:
        listed = ", ".join(f"'{s.name}' ({s.role})" for s in bad)
        names = ",".join(s.name for s in bad)
        raise ExportError(
            f"cannot export: column(s) {listed} are not supported — ONNX/TorchScript export takes numeric, "
            f"categorical and binary columns only; refit without them (--set columns.drop=[{names}]) or give "
            "them a supported role (--set columns.roles.NAME=categorical)"
        )


def table_input_names(pipeline: FeaturePipeline) -> list[str]:
    """The table inputs a graph of ``pipeline`` takes: ``numeric`` and/or ``categorical``."""
    names = []
    if pipeline.numeric:
        names.append("numeric")
    if pipeline.categorical:
        names.append("categorical")
    return names


def input_names(predictor: Predictor) -> list[str]:
    return table_input_names(predictor.pipeline)


def output_name(predictor: Predictor) -> str:
    return "probabilities" if predictor.is_classifier else "value"


def graph_inputs(predictor: Predictor, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The exported graph's inputs for raw rows, computed with the pipeline's own vocabularies."""
    return table_inputs(predictor.pipeline, frame)


def table_inputs(pipeline: FeaturePipeline, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Raw numbers (NaN = missing) and category codes of ``frame``'s columns, in the pipeline's order."""
    pipeline.check_columns(frame, "the data")
    inputs: dict[str, np.ndarray] = {}
    if pipeline.numeric:
        columns = [
            to_numbers(frame[name], infinite=enc.infinite, trained=True, missing=enc.missing)
            for name, enc in pipeline.numeric.items()
        ]
        inputs["numeric"] = np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.float32)
    if pipeline.categorical:
        codes = [enc.transform(frame[name]) for name, enc in pipeline.categorical.items()]
        inputs["categorical"] = np.ascontiguousarray(np.stack(codes, axis=1), dtype=np.int64)
    return inputs


def _buffer(values, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=dtype)


class NumericPreprocess(nn.Module):
    """The fitted :class:`NumericEncoder` of every numeric column, vectorised over columns."""

    def __init__(self, encoders: list[NumericEncoder]) -> None:
        super().__init__()
        count = len(encoders)
        self.register_buffer("median", _buffer([e.median for e in encoders]))
        quantile = [e.scaling != "standard" for e in encoders]
        self.kinds = "quantile" if all(quantile) else "standard" if not any(quantile) else "mixed"
        self.register_buffer("use_quantile", torch.tensor(quantile, dtype=torch.bool))
        self.register_buffer("mean", _buffer([e.mean for e in encoders]))
        self.register_buffer("std", _buffer([e.std for e in encoders]))
        self._quantile_tables(encoders)
        # missing flags and piecewise-linear bins, then the permutation back to the pipeline's column order
        flagged = [i for i, e in enumerate(encoders) if e.flag_missing]
        self.register_buffer("flag_columns", torch.tensor(flagged, dtype=torch.long))
        left, width, source = [], [], []
        for i, e in enumerate(encoders):
            if len(e.edges) >= 2:
                edges = np.asarray(e.edges, dtype="float64")
                left.extend(edges[:-1])
                width.extend(np.diff(edges))
                source.extend([i] * (len(edges) - 1))
        self.register_buffer("bin_left", _buffer(left))
        self.register_buffer("bin_width", _buffer(width))
        self.register_buffer("bin_source", torch.tensor(source, dtype=torch.long))
        order, flag_at, bin_at = [], count, count + len(flagged)
        for i, e in enumerate(encoders):
            order.append(i)
            if e.flag_missing:
                order.append(flag_at)
                flag_at += 1
            for _ in range(len(e.edges) - 1 if len(e.edges) >= 2 else 0):
                order.append(bin_at)
                bin_at += 1
        self.register_buffer("order", torch.tensor(order, dtype=torch.long))
        self.width = len(order)

    def _quantile_tables(self, encoders: list[NumericEncoder]) -> None:
        """Per column and segment: start x, y there and slope; thresholds padded to a power of two with +inf."""
        segments = [max(len(e.knots_x) - 1, 1) for e in encoders]
        size = 1 << max(0, math.ceil(math.log2(max(segments))))
        starts = np.full((len(encoders), size), np.inf)
        y0 = np.zeros((len(encoders), size))
        slope = np.zeros((len(encoders), size))
        low, high = np.zeros(len(encoders)), np.zeros(len(encoders))
        for i, e in enumerate(encoders):
            xs = np.asarray(e.knots_x or [0.0], dtype="float64")
            ys = np.asarray(e.knots_y or [0.0], dtype="float64")
            low[i], high[i] = xs[0], xs[-1]
            if len(xs) == 1:  # one knot: np.interp is constant
                starts[i, 0], y0[i, 0] = xs[0], ys[0]
                continue
            n = len(xs) - 1
            starts[i, :n] = xs[:-1]
            y0[i, :n] = ys[:-1]
            slope[i, :n] = np.diff(ys) / np.diff(xs)
        # starts[:, 0] is never compared (every clamped value is ≥ it), so the search begins at segment 0
        self.register_buffer("seg_start", _buffer(starts.reshape(-1)))
        self.register_buffer("seg_x", _buffer(np.where(np.isfinite(starts), starts, 0.0).reshape(-1)))
        self.register_buffer("seg_y", _buffer(y0.reshape(-1)))
        self.register_buffer("seg_slope", _buffer(slope.reshape(-1)))
        self.register_buffer("knot_low", _buffer(low))
        self.register_buffer("knot_high", _buffer(high))
        self.register_buffer("seg_offset", torch.arange(len(encoders), dtype=torch.long) * size)
        self.steps = [size >> k for k in range(1, size.bit_length())]  # size/2, size/4, ..., 1

    def _quantile(self, x: torch.Tensor) -> torch.Tensor:
        """``np.interp(x, knots_x, knots_y)`` per column: linear between knots, flat outside."""
        x = torch.maximum(torch.minimum(x, self.knot_high), self.knot_low)
        index = torch.zeros_like(x, dtype=torch.long) + self.seg_offset
        for step in self.steps:
            candidate = index + step
            index = torch.where(self.seg_start[candidate] <= x, candidate, index)
        return self.seg_y[index] + self.seg_slope[index] * (x - self.seg_x[index])

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        raw = raw.double()  # the pipeline computes in float64 and hands float32 to the model
        missing = ~torch.isfinite(raw)
        filled = torch.where(missing, self.median, raw)
        if self.kinds == "quantile":
            scaled = self._quantile(filled)
        elif self.kinds == "standard":
            scaled = (filled - self.mean) / self.std
        else:
            scaled = torch.where(self.use_quantile, self._quantile(filled), (filled - self.mean) / self.std)
        parts = [scaled]
        if len(self.flag_columns):
            parts.append(missing.index_select(1, self.flag_columns).to(scaled.dtype))
        if len(self.bin_source):
            values = filled.index_select(1, self.bin_source)
            parts.append(torch.clamp((values - self.bin_left) / self.bin_width, 0.0, 1.0))
        features = torch.cat(parts, dim=1) if len(parts) > 1 else scaled
        return features.index_select(1, self.order).float()


class TablePreprocess(nn.Module):
    """Raw numbers → the model's numeric features; category codes → codes the embeddings take (out of range = 0)."""

    def __init__(self, pipeline: FeaturePipeline) -> None:
        super().__init__()
        check_table_columns(pipeline.schema, whole_model=False)
        encoders = list(pipeline.numeric.values())
        if any(isinstance(e, DatetimeEncoder) for e in encoders):  # pragma: no cover - the check above catches it
            raise ExportError("cannot export datetime columns")
        self.numeric = NumericPreprocess(encoders) if encoders else None
        self.register_buffer("cardinality", torch.tensor(pipeline.cardinalities, dtype=torch.long))
        self.names = table_input_names(pipeline)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.numeric(numeric) if self.numeric is not None else numeric
        return features, torch.where((categorical < 0) | (categorical >= self.cardinality), 0, categorical)

    def split(self, rows: torch.Tensor, given: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """``given`` (the inputs in :attr:`names` order) as preprocessed ``(numeric, categorical)``; an absent
        kind is an empty ``(rows, 0)`` tensor."""
        by_name = dict(zip(self.names, given, strict=True))
        empty = rows.flatten(1)[:, :0]  # (rows, 0), sliced from an input so the batch axis stays dynamic
        numeric = by_name.get("numeric", empty.float())
        return self(numeric, by_name.get("categorical", empty.long()))


class PipelineGraph(nn.Module):
    """Numeric preprocessing + category-code guard + model + output head, for both inputs."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        check_exportable(predictor)
        pipeline = predictor.pipeline
        self.table = TablePreprocess(pipeline)
        self.model = predictor.model
        self.classify = predictor.is_classifier
        self.target_mean = float(pipeline.target_mean)
        self.target_std = float(pipeline.target_std)
        self.eval()

    def forward(self, *given: torch.Tensor) -> torch.Tensor:
        """``given``: the inputs in :func:`input_names` order (``numeric`` and/or ``categorical``)."""
        output = self.model(*self.table.split(given[0], given))
        if self.classify:
            return torch.softmax(output.float(), dim=1)
        return output[:, 0].double() * self.target_std + self.target_mean


def build_graph(predictor: Predictor) -> nn.Module:
    """The exportable module for ``predictor``; its inputs are :func:`input_names` in that order."""
    return PipelineGraph(predictor).eval()
