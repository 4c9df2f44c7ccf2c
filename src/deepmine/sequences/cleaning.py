"""Cleaning of timed series: parse and sort timestamps, drop duplicated ones (with a warning), resample
irregular or gappy series to a regular grid and fill the gaps, standardize with training statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from deepmine.exceptions import ColumnError, DataError, DeepmineWarning, did_you_mean
from deepmine.features.numeric import row_label


def numeric_targets(frame: pd.DataFrame, time: str, targets: list[str], where: str) -> list[str]:
    """The columns to forecast: the named ones (checked), else every numeric column but the time (the others
    left out with a warning)."""
    for column in [time, *targets]:
        if column not in frame.columns:
            raise ColumnError(f"column '{column}' is not in {where}{did_you_mean(column, frame.columns)}")
    if targets:
        for column in targets:
            if not pd.api.types.is_numeric_dtype(frame[column]):
                _stray_text(frame[column], where)
                raise ColumnError(
                    f"target column '{column}' of {where} is not numeric (dtype {frame[column].dtype}); "
                    "forecast numeric columns only"
                )
        return list(targets)
    for column in frame.columns:  # a column of numbers with a stray word is a mistake to show, not to skip
        if column != time and not pd.api.types.is_numeric_dtype(frame[column]):
            _stray_text(frame[column], where)
    found = [c for c in frame.columns if c != time and pd.api.types.is_numeric_dtype(frame[c])]
    if not found:
        raise ColumnError(f"{where} has no numeric column to forecast besides '{time}'; name them with --target")
    left_out = [c for c in frame.columns if c != time and c not in found]
    if left_out:
        shown = ", ".join(f"'{c}'" for c in left_out[:5]) + (
            f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
        )
        warnings.warn(
            f"{where}: left out {len(left_out)} non-numeric column(s) {shown}: forecasting reads numeric series "
            "only (name the series with --target to choose them yourself)",
            DeepmineWarning,
            stacklevel=3,
        )
    return found


def _stray_text(column: pd.Series, where: str) -> None:
    """A one-line error when ``column`` holds numbers but for a few (at most 10 %) text values: name the first."""
    present = column.dropna()
    if present.empty:
        return
    text = pd.to_numeric(present, errors="coerce").isna()
    if 0 < text.sum() <= 0.1 * len(present):
        first = int(text.to_numpy().nonzero()[0][0])
        raise ColumnError(
            f"column '{column.name}' of {where} holds numbers but {row_label(present, first)} holds "
            f"{present.iloc[first]!r} "
            f"({int(text.sum())} such value(s)); fix them or leave them blank (a blank value is interpolated)"
        )


EPOCH_UNITS = (("s", 1e8, 1e10), ("ms", 1e11, 1e13))  # plausible Unix times: 1973–2286 in seconds or milliseconds


def parse_times(column: pd.Series, where: str) -> pd.Series:
    """Timestamps of a time column: Unix seconds or milliseconds when it holds such numbers; text in the format
    of its first value, else day-first when that reads more values (01/07/2016 ... 13/07/2016 is July)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        present = column.dropna()
        for unit, low, high in EPOCH_UNITS:
            if len(present) and present.between(low, high).all():
                return pd.to_datetime(column, unit=unit, errors="coerce")
        return pd.to_datetime(column, errors="coerce")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas' "could not infer format" note
        stamps = pd.to_datetime(column, errors="coerce")
        if stamps.isna().sum() > column.isna().sum():
            day_first = pd.to_datetime(column, errors="coerce", dayfirst=True)
            if day_first.isna().sum() < stamps.isna().sum():
                return day_first
    return stamps


def regular_series(
    frame: pd.DataFrame, time: str, targets: list[str], where: str, freq: str | None = None
) -> tuple[pd.DataFrame, dict[str, int | str]]:
    """``targets`` indexed by a regular time grid: duplicates dropped (first kept, warned), rows sorted,
    resampled to ``freq`` (auto = the median step), gaps filled by time interpolation (ends by nearest)."""
    stamps = parse_times(frame[time], where)
    bad = int(stamps.isna().sum())
    if bad == len(frame):
        raise ColumnError(
            f"time column '{time}' of {where} holds no readable timestamps (first value {frame[time].iloc[0]!r}); "
            "pass the column with dates or times as --time"
        )
    if bad:
        first = int(stamps.isna().to_numpy().nonzero()[0][0])
        warnings.warn(
            f"{where}: dropped {bad} row(s) whose '{time}' is blank or not a timestamp (first: row {first + 1}, "
            f"{frame[time].iloc[first]!r})",
            DeepmineWarning,
            stacklevel=2,
        )
    values = frame[targets].astype("float64").set_axis(stamps).loc[stamps.notna().to_numpy()]
    values = values.sort_index(kind="stable")
    duplicated = values.index.duplicated(keep="first")
    report: dict[str, int | str] = {"unreadable_times": bad, "duplicates": int(duplicated.sum())}
    if duplicated.any():
        example = values.index[duplicated][0]
        warnings.warn(
            f"{where}: {int(duplicated.sum())} duplicated timestamps in '{time}' (first {example}); "
            "kept the first row of each",
            DeepmineWarning,
            stacklevel=2,
        )
        values = values[~duplicated]
    if len(values) < 2:
        raise DataError(f"{where} has {len(values)} distinct timestamps in '{time}'; a series needs at least 2")
    if freq is None:
        freq = values.index.to_series().diff().median()
    grid = pd.date_range(values.index[0], values.index[-1], freq=freq)
    regular = values.reindex(values.index.union(grid))
    step = pd.tseries.frequencies.to_offset(freq).freqstr
    absent = regular.loc[grid].isna().all(axis=1)
    missing = int(regular.loc[grid].isna().any(axis=1).sum())
    if absent.any():
        runs = (absent != absent.shift()).cumsum()[absent]
        sizes = runs.value_counts()
        start = runs.index[runs == sizes.index[0]][0]
        warnings.warn(
            f"{where}: {int(absent.sum())} of {len(grid)} time steps (every {step}) have no row and were filled by "
            f"interpolation; the longest gap is {sizes.iloc[0]} step(s) from {start}",
            DeepmineWarning,
            stacklevel=2,
        )
    regular = regular.interpolate(method="time", limit_direction="both").loc[grid]
    report.update({"rows": len(grid), "filled": missing, "freq": step})
    all_missing = [c for c in targets if regular[c].isna().all()]
    if all_missing:
        raise DataError(f"column '{all_missing[0]}' of {where} has no values; drop it or pass other --target columns")
    return regular, report


class Standardizer:
    """Per-channel mean and deviation from the training rows; a constant channel gets deviation 1."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        std = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(std > 1e-12, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean

    def state(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


def check_length(
    rows: int, lookback: int, horizon: int, where: str, part: str = "the series", fix: str | None = None
) -> None:
    """Clear error when a series is too short for one lookback + horizon window; ``fix`` says what to do (default:
    the fit's options)."""
    if rows < lookback + horizon:
        needed = f"lookback {lookback} + horizon {horizon}" if horizon else f"the lookback {lookback}"
        raise DataError(
            f"{part} of {where} has {rows} time steps, shorter than {needed}; "
            + (fix or "use a shorter --lookback or --horizon, or more data")
        )
