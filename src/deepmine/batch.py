"""Batch prediction (`deepmine predict`): CSV inputs stream in chunks, so memory stays flat in the number of rows.

Predictions are written chunk by chunk to a temporary file beside the output and renamed into place at the end,
so an error never leaves a half-written file. Parquet, JSON Lines and SQL inputs are read whole.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

from deepmine.data.sources import DataSource, describe, is_csv_file, iter_csv_chunks
from deepmine.exceptions import DataError
from deepmine.features.datetime import UnreadableTally
from deepmine.predictor import Predictor

CHUNK_ROWS = 50_000


def read_chunks(
    predictor: Predictor,
    data: DataSource,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Callable[[int, int], None] | None = None,
    verbatim: str | None = None,
) -> Iterator[pd.DataFrame]:
    """The input in chunks: CSV/TSV files stream ``chunk_rows`` rows at a time, other sources come whole; the column
    ``verbatim`` (an id) reads exactly as written."""
    if is_csv_file(data):
        yield from iter_csv_chunks(data, predictor.config.data, chunk_rows, on_progress, verbatim)
    else:
        yield predictor.read(data, verbatim)


def iter_predictions(
    predictor: Predictor,
    data: DataSource,
    id_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """:meth:`Predictor.predict_frame`'s table, one chunk of input rows at a time, in input order."""
    where = describe(data)
    id_column = predictor.id_of(id_column, data)
    unreadable = UnreadableTally()  # bad dates: one warning per column, counted over every chunk
    for index, chunk in enumerate(read_chunks(predictor, data, chunk_rows, on_progress, id_column)):
        frame, ids = predictor.with_ids(chunk, data, id_column)
        with unreadable.collect(others=index == 0):  # every chunk has the same columns: warn about them once
            table = predictor.predictions_table(frame, where, id_column, ids)
        yield table
    unreadable.warn()


class _TableWriter:
    """Appends prediction chunks to one open file as CSV/TSV, JSON Lines or Parquet."""

    def __init__(self, handle: IO[Any], kind: str) -> None:
        self.handle = handle
        self.kind = kind
        self.rows = 0
        self._parquet: Any = None
        self._schema: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        first = self.rows == 0
        if self.kind == "parquet":
            self._write_parquet(frame)
        elif self.kind == "jsonl":
            frame.to_json(self.handle, orient="records", lines=True)
        else:
            frame.to_csv(self.handle, index=False, header=first, sep="\t" if self.kind == "tsv" else ",")
        self.rows += len(frame)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self.handle, self._schema)
        elif table.schema != self._schema:
            table = table.cast(self._schema)  # e.g. an id column read as int in one chunk and float in another
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()


OUTPUT_KINDS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def is_gzip_name(path: Path) -> bool:
    """``x.csv.gz``, ``x.tsv.gz``, ``x.jsonl.gz``: a text table to compress."""
    return path.suffix.lower() == ".gz" and Path(path.stem).suffix.lower() in (".csv", ".tsv", ".jsonl", ".ndjson")


def table_kind(path: Path) -> str | None:
    """The table format an output file's name asks for (``.csv.gz`` and the like: compressed), else None."""
    return OUTPUT_KINDS.get(Path(path.stem).suffix.lower() if is_gzip_name(path) else path.suffix.lower())


def output_kind(path: Path) -> str:
    """:func:`table_kind`, and a usage error for any other name (``.xlsx``, ``.json``, no suffix), which would
    otherwise get CSV under a name that promises something else."""
    kind = table_kind(path)
    if kind is None:
        from deepmine.exceptions import ConfigError

        shown = f"'{path.suffix}'" if path.suffix else "no suffix"
        raise ConfigError(
            f"-o '{path}': {shown} is not a table format deepmine writes; name the file .csv, .tsv, .parquet or "
            f".jsonl (.csv.gz, .tsv.gz, .jsonl.gz compressed), such as "
            f"'{path.with_suffix('.csv') if path.suffix else path.name + '.csv'}'"
        )
    return kind


def check_prediction_output(output: Path | None, data: object, tables: bool = True) -> None:
    """Usage errors before any work: ``-o`` naming a folder or the input file, or (``tables``) a name whose format
    deepmine does not write."""
    if output is None:
        return
    from deepmine.io_utils import check_not_input, check_output_file

    check_output_file(output)
    check_not_input(output, data)
    if tables:
        output_kind(output)


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[Any]]:
    """A binary-capable file beside ``path`` that replaces it on success and is removed on any error."""
    from deepmine.io_utils import check_output_file

    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_predictions(chunks: Iterator[pd.DataFrame], output: Path | None) -> int:
    """Write every chunk to ``output`` (atomically) or as CSV to stdout; return the number of rows."""
    if output is None:
        writer = _TableWriter(sys.stdout, "csv")
        try:
            for chunk in chunks:
                writer.write(chunk)
        except DataError as err:
            if not writer.rows:
                raise
            raise type(err)(
                f"{err} ({writer.rows} predictions were already printed; -o FILE writes all rows or nothing)"
            ) from err
        finally:
            sys.stdout.flush()
        return writer.rows
    kind = output_kind(output)
    with atomic_output(output) as raw, ExitStack() as closing:
        if is_gzip_name(output):
            import gzip

            raw = closing.enter_context(gzip.GzipFile(fileobj=raw, mode="wb", mtime=0))
        if kind == "parquet":
            writer = _TableWriter(raw, kind)
        else:
            import io

            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            writer = _TableWriter(text, kind)
        try:
            for chunk in chunks:
                writer.write(chunk)
        finally:
            writer.close()
            if kind != "parquet":
                text.flush()
                text.detach()
    return writer.rows


def predict_to(
    predictor: Predictor,
    data: DataSource,
    output: Path | None,
    id_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    console: Any = None,
) -> int:
    """Predict every row of ``data`` into ``output`` (stdout when None) with a progress bar on ``console``."""
    if chunk_rows < 1:
        from deepmine.exceptions import ConfigError

        raise ConfigError(f"--chunk-rows must be a positive number of rows, got {chunk_rows}")
    name = describe(data)
    with _progress(console, name) as on_progress:
        chunks = iter_predictions(predictor, data, id_column, chunk_rows, on_progress)
        try:
            return write_predictions(chunks, output)
        except DataError as err:
            if name in str(err) or not isinstance(data, str | Path):
                raise
            raise type(err)(f"{name}: {err}") from err  # a bad value's message names its file


@contextmanager
def _progress(console: Any, name: str) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich progress bar over the input's bytes (only when ``console`` is a terminal)."""
    if console is None or not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("predicting {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(name, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
