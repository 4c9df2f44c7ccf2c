"""Larger-than-memory tables: read in chunks, never whole.

Parquet is read as Arrow record batches (``pyarrow.parquet.ParquetFile.iter_batches``, row group by row group,
the row groups in a shuffled order each epoch). CSV/TSV is read in chunks by the same pandas parser and options
as :func:`deepmine.data.sources.load_table`, so training and prediction parse values identically.
:class:`StreamingBatches` turns the chunks into shuffled mini-batches through a fitted FeaturePipeline; memory
depends on the chunk size, not on the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepmine.config import DataConfig
from deepmine.data.sources import (
    PARQUET_SUFFIXES,
    describe,
    is_csv_file,
    is_sql_url,
    iter_csv_chunks,
    mark_missing,
)
from deepmine.exceptions import ConfigError, DataError, SourceNotFoundError
from deepmine.features.datetime import UnreadableTally
from deepmine.features.pipeline import FeaturePipeline
from deepmine.predictor import to_tensors
from deepmine.train.batches import Batch

AUTO_BYTES = 1 << 30  # data.streaming unset: stream files larger than 1 GiB


def should_stream(source: object, data: DataConfig) -> bool:
    """Whether to train from chunks: ``data.streaming``, or automatically for Parquet/CSV files over 1 GiB."""
    if data.streaming is False:
        return False
    streamable = (
        not isinstance(source, pd.DataFrame)
        and not is_sql_url(source)
        and (str(source).lower().endswith(PARQUET_SUFFIXES) or is_csv_file(source))
    )
    if data.streaming is None:
        return streamable and Path(str(source)).is_file() and Path(str(source)).stat().st_size > AUTO_BYTES
    if not streamable:
        raise ConfigError(
            f"data.streaming=true needs a Parquet or CSV/TSV file; {describe(source)} is not one "
            "(load it whole with data.streaming=false)"
        )
    return True


class ChunkReader:
    """Chunks of a Parquet or CSV file as DataFrames, each with the file position of its first row."""

    def __init__(self, path: str | Path, data: DataConfig, columns: list[str] | None = None) -> None:
        self.path = Path(path)
        self.data = data
        self.columns = columns
        if not self.path.is_file():
            raise SourceNotFoundError(
                f"file '{self.path}' does not exist; check the path (current folder: {Path.cwd()})"
            )
        self.parquet = self.path.name.lower().endswith(PARQUET_SUFFIXES)
        self._groups: list[tuple[int, int]] | None = None  # (first row, rows) per Parquet row group

    def _file(self):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as err:  # pyarrow raises several types for damaged files
            raise DataError(f"file '{self.path}' could not be read as Parquet: {str(err).splitlines()[0]}") from err

    def row_groups(self) -> list[tuple[int, int]]:
        if self._groups is None:
            meta = self._file().metadata
            starts, first = [], 0
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                starts.append((first, rows))
                first += rows
            self._groups = starts
        return self._groups

    def chunks(
        self, generator: torch.Generator | None = None, columns: list[str] | None = None
    ) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(first row position, frame)`` per chunk; Parquet row groups shuffled when a generator is given."""
        columns = columns if columns is not None else self.columns
        size = self.data.chunk_rows
        if not self.parquet:
            position = 0
            for frame in iter_csv_chunks(self.path, self.data, chunk_rows=size):
                if columns is not None:
                    frame = frame[[c for c in columns if c in frame.columns]]
                yield position, frame.reset_index(drop=True)
                position += len(frame)
            return
        handle = self._file()
        groups = self.row_groups()
        order = (
            torch.randperm(len(groups), generator=generator).tolist() if generator is not None else range(len(groups))
        )
        for g in order:
            position = groups[g][0]
            for batch in handle.iter_batches(batch_size=size, row_groups=[g], columns=columns):
                frame = mark_missing(batch.to_pandas(), self.data.na_values)  # as in-memory reads do
                frame.columns = [str(c).strip() for c in frame.columns]
                yield position, frame
                position += len(frame)

    def head(self, rows: int) -> pd.DataFrame:
        """The first ``rows`` rows (fewer when the file is shorter)."""
        parts, have = [], 0
        for _, frame in self.chunks():
            parts.append(frame.head(rows - have))
            have += len(parts[-1])
            if have >= rows:
                break
        if not parts:
            raise DataError(f"{self.path} has no data rows; add rows or point at the right file")
        return pd.concat(parts, ignore_index=True)

    def count_labelled(self, target: str, *, unlabelled: bool = False) -> int:
        """Rows whose ``target`` is present — every row with ``unlabelled`` (a multilabel target's empty value
        is a row with no labels) — in one pass over that column only for Parquet."""
        total = 0
        for _, frame in self.chunks(columns=[target] if self.parquet else None):
            total += len(frame) if unlabelled else int(frame[target].notna().sum())
        return total


class StreamingBatches:
    """Shuffled mini-batches read chunk by chunk from disk (a :class:`~deepmine.train.batches.BatchSource`).

    Rows whose file position is in ``skip`` (the validation rows) and rows without a target (unless
    ``unlabelled``: a multilabel row with no labels) are left out.
    Each chunk is shuffled, then cut into batches of ``batch_size``; a remainder carries into the next chunk.
    """

    def __init__(
        self,
        reader: ChunkReader,
        pipeline: FeaturePipeline,
        target: str,
        batch_size: int | str,
        rows: int,
        skip: np.ndarray,
        *,
        unlabelled: bool = False,
    ) -> None:
        self.reader = reader
        self.dates_told = False  # unreadable dates are warned about after the first epoch only
        self.unlabelled = unlabelled
        self.pipeline = pipeline
        self.target = target
        self.rows = rows
        self.skip = np.sort(np.asarray(skip, dtype="int64"))
        self.batch_size = max(1, rows if batch_size == "full" else min(int(batch_size), rows))
        self.where = str(reader.path)

    def steps(self) -> int:
        full, rest = divmod(self.rows, self.batch_size)
        return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        carry: list[torch.Tensor] | None = None
        pending: list[torch.Tensor] | None = None
        unreadable = UnreadableTally()  # bad dates: one warning per column, counted over every chunk
        for position, frame in self.reader.chunks(generator):
            keep = np.ones(len(frame), dtype=bool) if self.unlabelled else frame[self.target].notna().to_numpy().copy()
            if len(self.skip):
                keep &= ~np.isin(np.arange(position, position + len(frame)), self.skip, assume_unique=True)
            if not keep.all():
                frame = frame[keep].reset_index(drop=True)
            if len(frame) == 0:
                continue
            with unreadable.collect():
                tensors = [
                    *to_tensors(self.pipeline.transform(frame, self.where)),
                    torch.from_numpy(self.pipeline.encode_target(frame, self.where).copy()),
                ]
            order = torch.randperm(len(frame), generator=generator)
            tensors = [t[order] for t in tensors]
            start = 0
            if carry is not None:  # top up the carried rows into one batch (no copy of the whole chunk)
                start = min(self.batch_size - len(carry[-1]), len(tensors[-1]))
                carry = [torch.cat([a, b[:start]]) for a, b in zip(carry, tensors, strict=True)]
                if len(carry[-1]) < self.batch_size:
                    continue
                if pending is not None:
                    yield pending[:-1], pending[-1]
                pending, carry = carry, None
            n = len(tensors[-1])
            cut = start + (n - start) // self.batch_size * self.batch_size
            for first in range(start, cut, self.batch_size):
                if pending is not None:
                    yield pending[:-1], pending[-1]
                pending = [t[first : first + self.batch_size] for t in tensors]
            carry = [t[cut:] for t in tensors] if cut < n else None
        if not self.dates_told:  # later epochs read the same rows (in another order): nothing new to say
            unreadable.warn()
            self.dates_told = True
        if carry is not None and len(carry[-1]) == 1 and pending is not None and self.batch_size > 1:
            pending = [torch.cat([a, b]) for a, b in zip(pending, carry, strict=True)]  # no one-row batch
            carry = None
        if pending is not None:
            yield pending[:-1], pending[-1]
        if carry is not None:
            yield carry[:-1], carry[-1]
