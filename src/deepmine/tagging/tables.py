"""Texts to tag from a table (CSV/TSV/Parquet file, SQL table or DataFrame): one sentence per row, in row order.

The column is the one named, else the table's only text column, else the one called ``text`` / ``sentence``
(any case). A missing value is an empty sentence, so predictions stay aligned with the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from deepmine.exceptions import DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".csv.gz", ".tsv.gz")
TEXT_NAMES = ("text", "sentence", "sentences", "content")


@dataclass
class TableTexts:
    """The texts of one column, the column's name, and the values of the id column (if one was asked for)."""

    texts: list[str]
    column: str
    ids: pd.Series | None = None


def is_table_source(data: Any, features: int | None = None) -> bool:
    """A DataFrame, a SQL URL, or a file whose name ends like a table (CSV/TSV/Parquet) — unless, with the
    model's ``features`` count given, a .csv/.tsv file holds CoNLL token lines (CoNLL files are often named so)."""
    from deepmine.data.sources import is_sql_url
    from deepmine.tagging.readers import looks_like_conll

    if isinstance(data, pd.DataFrame) or is_sql_url(data):
        return True
    if not (isinstance(data, str | Path) and str(data).lower().endswith(TABLE_SUFFIXES)):
        return False
    delimited = str(data).lower().endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz"))
    return not (features is not None and delimited and Path(data).is_file() and looks_like_conll(data, features))


def text_column(frame: pd.DataFrame, where: str, wanted: str | None = None, exclude: str | None = None) -> str:
    """The column holding the texts to tag (see the module docstring); a one-line error when it is unclear."""
    if wanted is not None:
        if wanted not in frame.columns:
            raise DataError(f"{where} has no column '{wanted}'; its columns are {list(frame.columns)}")
        return wanted
    textual = [
        c
        for c in frame.columns
        if c != exclude and (pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c]))
    ]
    if len(textual) == 1:
        return textual[0]
    named = [c for c in textual if c.lower() in TEXT_NAMES]
    if len(named) == 1:
        return named[0]
    if not textual:
        raise DataError(
            f"{where} has no text column (columns {list(frame.columns)}); expected a column of sentences to tag"
        )
    raise DataError(f"{where} has {len(textual)} text columns {textual}; name the one to tag with --column NAME")


def read_table_texts(
    data: Any, read: Any = None, column: str | None = None, id_column: str | None = None
) -> TableTexts:
    """The texts of ``data``'s text column (read with ``read``, a DataConfig) and its ``id_column`` values."""
    from deepmine.data.sources import describe, load_table

    frame = load_table(data, read, verbatim=id_column)
    where = describe(data)
    if id_column is not None and id_column not in frame.columns:
        raise DataError(f"{where} has no id column '{id_column}'; its columns are {list(frame.columns)}")
    name = text_column(frame, where, column, exclude=id_column)
    values = frame[name]
    texts = ["" if pd.isna(v) else str(v) for v in values.tolist()]
    return TableTexts(texts, name, frame[id_column] if id_column is not None else None)
