"""Sequence inputs: wide rows (one series per row), long format (id, time, values), arrays.

Everything becomes ``(values, lengths)``: a float32 array (rows, steps, channels), zero-padded after each
series' end, and the number of valid steps per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepmine.exceptions import ColumnError, DataError, did_you_mean
from deepmine.features.numeric import row_label


def label_column(frame: pd.DataFrame, label: str | int, where: str) -> str:
    """The label column's name, given by name or position."""
    if isinstance(label, int) or (isinstance(label, str) and label.isdigit() and label not in frame.columns):
        position = int(label)
        if not -len(frame.columns) <= position < len(frame.columns):
            raise ColumnError(f"label position {position} is outside the {len(frame.columns)} columns of {where}")
        return frame.columns[position]
    if label not in frame.columns:
        raise ColumnError(f"label column '{label}' is not in {where}{did_you_mean(label, frame.columns)}")
    return label


def from_arrays(values: np.ndarray, where: str = "the array") -> tuple[np.ndarray, np.ndarray]:
    """(n, steps) or (n, steps, channels) → padded float32 values and lengths (trailing NaN = shorter series)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise DataError(f"{where} has shape {array.shape}; expected (rows, steps) or (rows, steps, channels)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{where} is empty (shape {array.shape}); pass at least one series with one step")
    if np.isinf(array).any():
        raise DataError(f"{where} holds infinite values; replace them before fitting")
    present = ~np.isnan(array).all(axis=2)  # (n, steps)
    lengths = np.where(present.any(axis=1), array.shape[1] - np.argmax(present[:, ::-1], axis=1), 0)
    if (lengths == 0).any():
        raise DataError(f"row {int(np.argmax(lengths == 0)) + 1} of {where} has no values; drop empty series")
    filled = np.nan_to_num(array, nan=0.0)
    inside = np.arange(array.shape[1])[None, :] < lengths[:, None]
    gappy = np.flatnonzero((np.isnan(array).any(axis=2) & inside).any(axis=1))
    for i in gappy:  # inner gaps: linear interpolation along the steps, per channel
        valid = pd.DataFrame(array[i, : lengths[i]]).interpolate(limit_direction="both").fillna(0.0)
        filled[i, : lengths[i]] = valid.to_numpy()
    return filled.astype(np.float32), lengths.astype(np.int64)


def from_wide(
    frame: pd.DataFrame, label: str | int | None, where: str, channels: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Wide rows: every column but the label is one step (``channels`` values per step). → values, lengths, y."""
    y = None
    if label is not None:
        name = label_column(frame, label, where)
        y = frame[name].to_numpy()
        frame = frame.drop(columns=[name])
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        column = frame[bad[0]]
        text = pd.to_numeric(column, errors="coerce").isna() & column.notna()
        row = int(text.to_numpy().nonzero()[0][0]) if text.any() else 0
        raise ColumnError(
            f"column '{bad[0]}' of {where} is not numeric: {row_label(column, row)} holds {column.iloc[row]!r}; "
            "wide sequence rows hold one label column and numeric steps"
        )
    values = frame.to_numpy(dtype=np.float64)
    if values.shape[1] % channels:
        raise DataError(f"{where} has {values.shape[1]} value columns, not a multiple of {channels} channels")
    values = values.reshape(len(values), -1, channels)
    padded, lengths = from_arrays(values, where)
    return padded, lengths, y


def from_long(
    frame: pd.DataFrame, id_column: str, time: str, values: list[str], where: str, label: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Long format: one row per (id, time); each id becomes one variable-length sequence, ordered by time.
    → ids, padded values (ids, longest, channels), lengths, labels (the first label per id) or None."""
    for column in [id_column, time, *values, *([label] if label else [])]:
        if column not in frame.columns:
            raise ColumnError(f"column '{column}' is not in {where}{did_you_mean(column, frame.columns)}")
    ordered = frame.sort_values([id_column, time], kind="stable")
    groups = ordered.groupby(id_column, sort=False)
    ids = np.asarray(list(groups.groups))
    longest = int(groups.size().max())
    out = np.full((len(ids), longest, len(values)), np.nan)
    for i, (_, part) in enumerate(groups):
        out[i, : len(part)] = part[values].to_numpy(dtype=np.float64)
    padded, lengths = from_arrays(out, where)
    labels = groups[label].first().to_numpy() if label else None
    return ids, padded, lengths, labels
