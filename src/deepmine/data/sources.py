"""Read a table from a file (CSV/TSV, Parquet, JSON Lines), a SQLAlchemy URL, or a DataFrame."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from deepmine.config import DataConfig
from deepmine.data.csv_sniff import SQLITE_MAGIC, sniff_dialect
from deepmine.exceptions import DataError, SourceNotFoundError, did_you_mean
from deepmine.urls import redact_in, redact_url

PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".json")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+]*://")

DataSource = Any  # str | Path | pandas.DataFrame


def is_sql_url(source: object) -> bool:
    """True for SQLAlchemy URLs such as ``sqlite:///shop.db`` or ``postgresql://host/db``."""
    return isinstance(source, str) and bool(_URL.match(source))


def check_sql_options(source: str | Path | None, table: str | None, query: str | None) -> None:
    """A one-line :class:`DataError` when ``--table`` or ``--query`` comes with a source that is not a database URL:
    a file is read whole, so they would be ignored."""
    if source is None or not (table or query) or is_sql_url(source) or not Path(source).exists():
        return  # a path that does not exist: the reader says so
    given = " and ".join([f"--table '{table}'"] * bool(table) + ["--query"] * bool(query))
    path = Path(source)
    if path.is_file() and _starts_with(path, SQLITE_MAGIC):
        raise DataError(f"file '{path}' is a SQLite database; pass its URL, sqlite:///{path}, with {given}")
    verb, kind = "apply" if table and query else "applies", "folder" if path.is_dir() else "file"
    raise DataError(
        f"{given} {verb} only to database sources, but '{source}' is a {kind}, which is read whole; drop {given}, "
        "or pass the database as a SQLAlchemy URL such as sqlite:///shop.db"
    )


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


def describe(source: DataSource) -> str:
    """A short name for messages, summaries and tracking (a database URL's password masked)."""
    if isinstance(source, pd.DataFrame):
        return "the DataFrame"
    return redact_url(str(source))


def load_table(source: DataSource, data: DataConfig | None = None, *, verbatim: str | None = None) -> pd.DataFrame:
    """Load any supported source into a DataFrame; raise a one-line :class:`DataError` on bad input.

    ``verbatim`` names a column (an id to echo) read exactly as written: CSV text stays text ('007', 'NA') and
    no source turns its missing-value words into missing; :func:`reparse` reads it as the other columns."""
    data = data or DataConfig()
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    elif is_sql_url(source):
        frame = _read_sql(source, data)
    else:
        frame = _read_file(Path(source), data, verbatim)
    if not isinstance(source, pd.DataFrame) and not is_csv_file(source):  # every file format and database reads
        # '?' or 'NA' as the CSV reader does; a DataFrame is as given
        frame = mark_missing(frame, data.na_values, keep=verbatim)
    name = describe(source)
    if frame.shape[1] == 0:
        raise DataError(f"{name} has no columns; expected a table with a header row and data rows")
    if len(frame) == 0:
        raise DataError(f"{name} has a header but no data rows; add rows or point at the right file")
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(f"{name} has duplicate column names {duplicated}; rename them so each is unique")
    return frame


def mark_missing(frame: pd.DataFrame, na_values: list[str], keep: str | None = None) -> pd.DataFrame:
    """Text cells exactly equal to one of ``na_values`` (``data.na_values``) become missing, as CSVs read them;
    the column named ``keep`` (an id) is left as it is."""
    if not na_values:
        return frame
    for column in frame.columns:
        values = frame[column]
        if keep is not None and str(column).strip() == keep:
            continue
        if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            missing = values.isin(na_values)
            if missing.any():
                frame[column] = values.mask(missing)
    return frame


def reparse(column: pd.Series, source: DataSource, data: DataConfig) -> pd.Series:
    """A column loaded ``verbatim`` (see :func:`load_table`) as ``source``'s reader reads the other columns:
    for an id that is also a model input."""
    if isinstance(source, pd.DataFrame) or is_sql_url(source) or not is_csv_file(source):
        return mark_missing(column.to_frame(), data.na_values)[column.name]
    return reparse_csv_text(column, data.na_values)


def reparse_csv_text(column: pd.Series, na_values: list[str]) -> pd.Series:
    """A column of CSV text read verbatim, as the CSV reader reads the other columns (numbers, ``na_values``)."""
    text = column.to_csv(index=False, header=False, quoting=csv.QUOTE_ALL)
    options = {"na_values": na_values, "keep_default_na": False, "skipinitialspace": True, "low_memory": False}
    parsed = pd.read_csv(io.StringIO(text), header=None, **options)[0] if len(column) else column
    return pd.Series(parsed.to_numpy(), index=column.index, name=column.name)


def _read_file(path: Path, data: DataConfig, verbatim: str | None = None) -> pd.DataFrame:
    if not path.exists():
        raise SourceNotFoundError(f"file '{path}' does not exist; check the path (current folder: {Path.cwd()})")
    if path.is_dir():
        from deepmine.text.folders import is_text_folder, read_text_folder

        if is_text_folder(path):  # class folders of .txt files → (text, label)
            return read_text_folder(path)
        raise DataError(f"'{path}' is a folder; expected a table file (CSV, TSV, Parquet, JSON Lines) or a SQL URL")
    if path.stat().st_size == 0:
        raise DataError(f"file '{path}' is empty; expected a header row and data rows")
    lower = path.name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return _read_parquet(path)
    if lower.endswith(JSONL_SUFFIXES):
        return _read_jsonl(path)
    if lower.endswith(".mat"):
        return _read_mat(path)
    return _read_csv(path, data, verbatim)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise DataError(f"file '{path}' could not be read as Parquet: {str(err).splitlines()[0]}") from err


def _read_jsonl(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_json(path, lines=True)
    except (ValueError, TypeError) as err:
        raise DataError(f"file '{path}' is not JSON Lines (one JSON object per line): {_bad_json_line(path)}") from err
    for column in frame.columns:
        if pd.api.types.infer_dtype(frame[column], skipna=True) not in ("string", "integer", "floating", "boolean"):
            nested = frame[column].map(lambda v: isinstance(v, dict | list))
            if nested.any():
                row = int(nested.to_numpy().nonzero()[0][0])
                raise DataError(
                    f"file '{path}' line {row + 1}: field '{column}' holds a nested "
                    f"{type(frame[column].iloc[row]).__name__}; expected a number, string, true/false or null "
                    "(flatten nested fields into columns of their own)"
                )
    return frame


def _bad_json_line(path: Path) -> str:
    """``line N: reason`` for the first line of ``path`` that is not one JSON object."""
    import json

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                return f"line {number}: {err.msg} at column {err.colno}"
            if not isinstance(value, dict):
                return f"line {number} holds a JSON {type(value).__name__}, not an object {{...}}"
    return "its lines do not form one table"


def _read_mat(path: Path) -> pd.DataFrame:
    """A MATLAB v5 file (as ODDS ships its sets): each 2-D numeric variable with as many rows as the largest is
    columns — ``X`` with 21 columns becomes ``X_1`` ... ``X_21``, a one-column ``y`` stays ``y``."""
    import numpy as np
    from scipy.io import loadmat

    try:
        variables = loadmat(str(path))
    except NotImplementedError as err:  # v7.3 files are HDF5
        raise DataError(
            f"file '{path}' is a MATLAB v7.3 (HDF5) file, which is not read; save it with save(..., '-v7') or as CSV"
        ) from err
    except Exception as err:  # scipy raises several types for damaged or non-MATLAB files
        raise DataError(f"file '{path}' could not be read as a MATLAB file: {str(err).splitlines()[0]}") from err
    arrays = {}
    for name, value in variables.items():
        if name.startswith("__") or not isinstance(value, np.ndarray) or value.ndim != 2:
            continue
        if value.dtype.kind not in "biuf" or 0 in value.shape:
            continue
        value = value.T if value.shape[0] == 1 and value.shape[1] > 1 else value  # row vectors → columns
        if value.dtype.kind == "f" and np.isfinite(value).all() and (value == np.round(value)).all():
            value = value.astype("int64")  # labels saved as doubles (MATLAB's default) read as 0/1, not 0.0/1.0
        arrays[name] = value
    if not arrays:
        raise DataError(f"file '{path}' holds no numeric matrix; expected variables such as X (rows × columns) and y")
    rows = max(a.shape[0] for a in arrays.values())
    columns: dict[str, Any] = {}
    for name, value in arrays.items():
        if value.shape[0] != rows:
            continue
        if value.shape[1] == 1:
            columns[name] = value[:, 0]
        else:
            columns.update({f"{name}_{i + 1}": value[:, i] for i in range(value.shape[1])})
    return pd.DataFrame(columns)


_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _csv_options(path: Path, data: DataConfig, verbatim: str | None = None) -> tuple[dict[str, Any], bool]:
    """``pandas.read_csv`` keyword arguments for ``path`` (dialect sniffed) and whether it has a header; the column
    named ``verbatim`` reads as text with no missing-value words."""
    dialect = sniff_dialect(path, data.sep, data.encoding, data.header)
    if dialect.header:  # blank names (trailing delimiters) are named by pandas: not a clash
        repeated = sorted({name for name in dialect.first_row if name and dialect.first_row.count(name) > 1})
        if repeated:
            raise DataError(
                f"file '{path}' has duplicate column names {repeated} in its header; rename them so each is "
                "unique (or pass --no-header if the first row is data)"
            )
    options = {
        "sep": dialect.sep,
        "encoding": dialect.encoding,
        "header": 0 if dialect.header else None,
        "skiprows": dialect.skip_rows,
        "skipinitialspace": True,
        "na_values": data.na_values,
        "keep_default_na": False,
        "low_memory": False,
    }
    options["skip_blank_lines"] = skips_blank_lines(dialect.fields)
    if not options["skip_blank_lines"]:
        options["skiprows"] = dialect.skip_rows + dialect.blank_rows  # blank lines before the first row: skipped
    if verbatim is not None:
        with _csv_errors(path, dialect.encoding):
            names = pd.read_csv(path, nrows=0, **options).columns
        options.update(verbatim_options(list(names), dialect.header, verbatim, data.na_values))
    return options, dialect.header


def skips_blank_lines(fields: int) -> bool:
    """Whether a CSV whose first row has ``fields`` fields skips its blank lines: in a one-column file a blank (or
    whitespace-only) line after the first row is an empty value — a row to keep, so predictions stay aligned with
    the input lines — while in a wider file it is a stray line."""
    return fields != 1


def verbatim_options(names: list[Any], header: bool, verbatim: str, na_values: list[str]) -> dict[str, Any]:
    """``pandas.read_csv`` arguments that read column ``verbatim`` (of the parser's column ``names``) as text,
    missing-value words included, and every other column with ``na_values``."""
    shown = [str(c).strip() for c in names] if header else [f"column_{i + 1}" for i in range(len(names))]
    if verbatim not in shown:
        return {}  # the caller names the missing column
    raw = names[shown.index(verbatim)]
    return {"na_values": {c: na_values for c in names if c != raw}, "dtype": {raw: str}}


@contextmanager
def _csv_errors(path: Path, encoding: str) -> Iterator[None]:
    """Turn pandas' CSV reading errors into one-line :class:`DataError` messages."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise DataError(
            f"file '{path}' is not valid {encoding} text (it holds byte "
            f"0x{err.object[err.start]:02x}, which {encoding} cannot decode); pass the file's "
            "encoding, for example --encoding latin-1, or leave --encoding out to have it sniffed"
        ) from err
    except UnicodeError as err:  # e.g. "UTF-16 stream does not start with BOM"
        raise DataError(
            f"file '{path}' cannot be read as {encoding} text ({err}); pass the file's encoding, or leave "
            "--encoding out to have it sniffed"
        ) from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"file '{path}' is empty; expected a header row and data rows") from err
    except pd.errors.ParserError as err:
        match = _RAGGED.search(str(err))
        if match:
            expected, line, saw = match.groups()
            raise DataError(
                f"file '{path}' line {line} has {saw} fields but the header has {expected}; "
                "fix that row, quote fields that contain the delimiter, or pass the right --sep"
            ) from err
        raise DataError(f"file '{path}' could not be parsed as CSV: {str(err).splitlines()[-1]}") from err
    except LookupError as err:
        raise DataError(f"unknown encoding '{encoding}'; pass a valid --encoding such as utf-8") from err


def _read_csv(path: Path, data: DataConfig, verbatim: str | None = None) -> pd.DataFrame:
    options, header = _csv_options(path, data, verbatim)
    with _csv_errors(path, options["encoding"]):
        frame = pd.read_csv(path, **options)
    if not header:
        frame.columns = [f"column_{i + 1}" for i in range(frame.shape[1])]
    return frame


def is_csv_file(source: DataSource) -> bool:
    """True for a path to a delimited text file (not Parquet, JSON Lines or a SQL URL)."""
    if isinstance(source, pd.DataFrame) or is_sql_url(source):
        return False
    if Path(source).is_dir():  # a folder of .txt files is read whole
        return False
    name = Path(source).name.lower()
    compressed = name.endswith((".bz2", ".zip", ".xz", ".zst", ".tar"))  # pandas reads these whole
    return not compressed and not name.endswith((*PARQUET_SUFFIXES, *JSONL_SUFFIXES, ".mat"))


def iter_csv_chunks(
    source: str | Path,
    data: DataConfig | None = None,
    chunk_rows: int = 50_000,
    on_progress: Callable[[int, int], None] | None = None,
    verbatim: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Read a CSV/TSV file in chunks of ``chunk_rows`` rows, each checked and cleaned like :func:`load_table`
    (``verbatim`` as there).

    Memory stays flat in the number of rows. ``on_progress(bytes_read, total_bytes)`` is called after each
    chunk. Raises the same one-line :class:`DataError` messages as :func:`load_table`.
    """
    data = data or DataConfig()
    path = Path(source)
    name = describe(source)
    if not path.exists():
        raise SourceNotFoundError(f"file '{path}' does not exist; check the path (current folder: {Path.cwd()})")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; expected a table file (CSV, TSV, Parquet, JSON Lines) or a SQL URL")
    total = path.stat().st_size
    if total == 0:
        raise DataError(f"file '{path}' is empty; expected a header row and data rows")
    options, header = _csv_options(path, data, verbatim)
    rows = 0
    with open(path, "rb") as raw:
        # a binary handle is decoded exactly as pandas decodes a path, so chunks parse like the whole file
        binary = gzip.GzipFile(fileobj=raw) if path.name.lower().endswith(".gz") else raw
        with _csv_errors(path, options["encoding"]):
            reader = pd.read_csv(binary, chunksize=chunk_rows, **options)
            for frame in _checked_chunks(reader, name, header):
                rows += len(frame)
                if on_progress is not None:
                    on_progress(raw.tell(), total)
                yield frame
    if rows == 0:
        raise DataError(f"{name} has a header but no data rows; add rows or point at the right file")


def _checked_chunks(reader: Iterable[pd.DataFrame], name: str, header: bool) -> Iterator[pd.DataFrame]:
    for frame in reader:
        if frame.shape[1] == 0:
            raise DataError(f"{name} has no columns; expected a table with a header row and data rows")
        if not header:
            frame.columns = [f"column_{i + 1}" for i in range(frame.shape[1])]
        frame.columns = [str(c).strip() for c in frame.columns]
        duplicated = frame.columns[frame.columns.duplicated()].tolist()
        if duplicated:
            raise DataError(f"{name} has duplicate column names {duplicated}; rename them so each is unique")
        if len(frame):
            yield frame


def _rows_or_error(frame: pd.DataFrame, what: str, shown: str, fix: str) -> pd.DataFrame:
    """``frame`` as ``what`` (a query or table) of database ``shown`` returned it; a one-line error when it has no
    rows (rather than the wording meant for an empty file)."""
    if len(frame) == 0:
        raise DataError(f"{what} on database '{shown}' returned no rows; {fix}")
    return frame


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + ":memory:"):
        return Path(url[len(prefix) :].split("?")[0])
    return None


def _read_sql(url: str, data: DataConfig) -> pd.DataFrame:
    import sqlalchemy as sa

    db_file = _sqlite_path(url)
    shown = redact_url(url)
    if data.query and data.table:
        raise DataError(
            f"both --table '{data.table}' and --query were given for '{shown}'; pass one (the query can name the "
            'table: --query "SELECT ... FROM ...")'
        )
    if db_file is not None and not db_file.exists():
        raise SourceNotFoundError(f"database file '{db_file}' does not exist; check the URL '{shown}'")
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as err:
        reason = redact_in(str(err).splitlines()[0], url)
        raise DataError(f"'{shown}' is not a usable SQLAlchemy URL: {reason}") from err
    try:
        with engine.connect() as conn:
            if data.query:
                rows = pd.read_sql_query(sa.text(data.query), conn)
                return _rows_or_error(rows, f"query {data.query!r}", shown, "check the query's conditions")
            tables = sa.inspect(conn).get_table_names()
            table = data.table
            if table is None:
                if len(tables) != 1:
                    raise DataError(
                        f"database '{shown}' holds {len(tables)} tables {tables}; choose one with --table NAME "
                        'or pass --query "SELECT ..."'
                    )
                table = tables[0]
            if table not in tables:
                raise DataError(
                    f"table '{table}' is not in database '{shown}'{did_you_mean(table, tables)}; tables: {tables}"
                )
            rows = pd.read_sql_table(table, conn)
            return _rows_or_error(rows, f"table '{table}'", shown, "add rows or choose another --table")
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as err:
        reason = redact_in(str(err).splitlines()[0], url)
        reason = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", reason)
        raise DataError(f"reading '{shown}' failed: {reason}") from err
    finally:
        engine.dispose()
