"""Datetime columns: parsed, split into calendar parts, each part scaled like a number."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from deepmine.exceptions import DeepmineWarning
from deepmine.features.numeric import NumericEncoder, stacked_value_columns

PARTS = ("year", "month", "day", "dayofweek", "hour", "epoch_days")


DOTTED_DATE = r"^\s*\d{1,2}\.\d{1,2}\.\d{4}\b"  # 13.01.2020: written day first wherever it is used


def parse_dates(column: pd.Series) -> pd.Series:
    """Parse any date/time strings; unparseable values become missing. Dotted dates (13.01.2020) are read day
    first, each value on its own, so a value parses the same in any batch."""
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        textual = column.dtype == object or pd.api.types.is_string_dtype(column)
        dotted = column.astype(str).str.match(DOTTED_DATE).to_numpy(dtype=bool) if textual else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
            if dotted is not None and dotted.any():
                parsed[dotted] = pd.to_datetime(
                    column[dotted], errors="coerce", format="mixed", utc=True, dayfirst=True
                )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


class UnreadableDates(DeepmineWarning):
    """Values of a datetime column that could not be read as dates, so were treated as missing."""

    def __init__(self, where: str, column: str, count: int, example: Any) -> None:
        self.where, self.column, self.count, self.example = where, column, count, example
        super().__init__(
            f"{where}: {count} value(s) of column '{column}' could not be read as dates (for example {example!r}) "
            "and were treated as missing; write them as dates such as 2020-01-13, or leave them empty"
        )


def warn_unreadable(column: pd.Series, dates: pd.Series, where: str) -> None:
    """One :class:`UnreadableDates` warning for the values of ``column`` that are present and not blank but are
    missing in ``dates`` (``column`` parsed): a bad value must not stop a prediction, nor pass unnoticed."""
    failed = dates.isna().to_numpy() & column.notna().to_numpy()
    if not failed.any():
        return
    values = column[failed]
    values = values[values.astype(str).str.strip() != ""]  # blank: missing already, not a date read wrong
    if len(values):
        warnings.warn(UnreadableDates(where, str(column.name), len(values), values.iloc[0]), stacklevel=2)


class UnreadableTally:
    """Sums the :class:`UnreadableDates` warnings of the chunks of one input, to warn once per column."""

    def __init__(self) -> None:
        self.found: dict[str, UnreadableDates] = {}

    @contextmanager
    def collect(self, others: bool = True) -> Iterator[None]:
        """Hold back the :class:`UnreadableDates` warnings raised inside; other deepmine warnings pass on when
        ``others``, else are dropped (a later chunk repeats what the first one said)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnreadableDates)
            yield
        for item in caught:
            found = item.message
            if isinstance(found, UnreadableDates):
                held = self.found.get(found.column)
                count = found.count + (held.count if held else 0)
                self.found[found.column] = UnreadableDates(found.where, found.column, count, (held or found).example)
            elif others or not issubclass(item.category, DeepmineWarning):
                warnings.warn_explicit(found, item.category, item.filename, item.lineno)

    def warn(self) -> None:
        """The held-back warnings, one per column, with the counts summed."""
        for found in self.found.values():
            warnings.warn(found, stacklevel=2)


def date_parts(column: pd.Series) -> pd.DataFrame:
    """Calendar parts of a datetime column as float columns (NaN where missing)."""
    dates = parse_dates(column)
    epoch = (dates - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
    parts = {
        "year": dates.dt.year,
        "month": dates.dt.month,
        "day": dates.dt.day,
        "dayofweek": dates.dt.day_of_week,
        "hour": dates.dt.hour,
        "epoch_days": epoch,
    }
    return pd.DataFrame({k: pd.to_numeric(v).astype("float64") for k, v in parts.items()}, index=column.index)


class DatetimeEncoder:
    """One standardized numeric encoder per calendar part (parts constant in training are skipped)."""

    def __init__(self) -> None:
        self.parts: dict[str, NumericEncoder] = {}

    def fit(self, column: pd.Series) -> DatetimeEncoder:
        frame = date_parts(column)
        self.parts = {
            name: NumericEncoder(scaling="standard").fit(frame[name])
            for name in PARTS
            if frame[name].nunique(dropna=True) > 1
        }
        return self

    @property
    def width(self) -> int:
        return sum(enc.width for enc in self.parts.values())

    @property
    def value_columns(self) -> list[int]:
        """Each part's value columns (see :attr:`NumericEncoder.value_columns`), as positions in this block."""
        return stacked_value_columns(self.parts.values())

    def transform(self, column: pd.Series, where: str = "the data") -> np.ndarray:
        """The standardized parts; values that are not dates are missing, with a warning naming ``where``."""
        if not self.parts:  # the column adds nothing: nothing to parse or warn about
            return np.zeros((len(column), 0), dtype="float32")
        dates = parse_dates(column)
        warn_unreadable(column, dates, where)
        frame = date_parts(dates)
        return np.concatenate([enc.transform(frame[name]) for name, enc in self.parts.items()], axis=1)

    def state(self) -> dict[str, Any]:
        return {"parts": {name: enc.state() for name, enc in self.parts.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DatetimeEncoder:
        encoder = cls()
        encoder.parts = {name: NumericEncoder.from_state(s) for name, s in state["parts"].items()}
        return encoder
