"""Sniff a delimited text file's encoding, delimiter and header from its first bytes."""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import zipfile
from dataclasses import dataclass
from pathlib import Path

from deepmine.exceptions import DataError

SAMPLE_BYTES = 256 * 1024
DELIMITERS = ",;\t|"
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first bytes of every SQLite database file


@dataclass(frozen=True)
class CsvDialect:
    """What a CSV reader needs to know."""

    encoding: str
    sep: str
    header: bool
    skip_rows: int = 0
    blank_rows: int = 0  # blank lines after the skipped comment lines, before the first row
    fields: int = 0  # fields of the first row (quotes respected)
    first_row: tuple[str, ...] = ()  # the first row's cells, stripped (the column names when ``header``)


def read_sample(path: Path, size: int = SAMPLE_BYTES) -> bytes:
    """First ``size`` bytes of a file, decompressed as pandas decompresses it (by the name's suffix, in any case:
    ``.gz``, ``.bz2``, ``.xz``, ``.zip``), so the sample sniffed is the text pandas then parses."""
    name = path.name.lower()
    openers = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zip": None}
    suffix = next((suffix for suffix in openers if name.endswith(suffix)), None)
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if not members:
                    raise DataError(f"file '{path}' is a ZIP archive with no file in it; expected one CSV/TSV inside")
                with archive.open(members[0]) as handle:
                    return handle.read(size)
        with (openers.get(suffix or "") or open)(path, "rb") as handle:
            return handle.read(size)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as err:
        if suffix is None:
            raise
        raise DataError(
            f"file '{path}' is named {suffix} but is not a valid {suffix} archive ({err}); rename it to match its "
            "content (for example drop the suffix of a plain CSV) or compress it again"
        ) from err


def _refuse_binary_table(sample: bytes, path: Path) -> None:
    """A database, Parquet file or spreadsheet that reached the text reader (by its name): say what it is and
    how to read it, rather than calling it text in an unknown encoding."""
    if sample.startswith(SQLITE_MAGIC):
        how = f'read it through its URL: sqlite:///{path} --table NAME (or --query "SELECT ...")'
        raise DataError(f"file '{path}' is a SQLite database, not a delimited text file; {how}")
    if sample.startswith(b"PAR1"):
        raise DataError(f"file '{path}' is a Parquet file; name it with a .parquet suffix so it is read as Parquet")
    workbook = path.name.lower().endswith((".xls", ".xlsx", ".xlsm"))
    if workbook and sample.startswith((b"\xd0\xcf\x11\xe0", b"PK\x03\x04")):
        raise DataError(f"file '{path}' is an Excel workbook; save the sheet as CSV (or Parquet) and pass that file")


def bom_encoding(data: bytes) -> str | None:
    """The encoding a UTF-8 or UTF-16 byte-order mark names (the codec drops the mark), else None."""
    boms = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    return next((name for bom, name in boms if data.startswith(bom)), None)


def legacy_encoding(data: bytes) -> str | None:
    """charset-normalizer's confident guess for bytes that are not UTF-8 (GBK text: gb18030), None when it has
    none or the bytes hold NULs (binary, or UTF-16 without a byte-order mark)."""
    from charset_normalizer import from_bytes

    if b"\x00" in data:
        return None
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    # Short samples often tie between single-byte code pages (cp1250, cp775, cp1252 ...); on a tie
    # prefer Windows-1252 (the latin-1 superset), by far the most common legacy encoding of tables.
    if any(m.chaos <= best.chaos and "cp1252" in m.could_be_from_charset for m in matches):
        return "cp1252"
    return best.encoding


def sniff_encoding(sample: bytes, path: Path, fix: str = "pass --encoding (for example --encoding latin-1)") -> str:
    """Pick an encoding: a BOM wins, then UTF-8, then charset-normalizer's confident guess; else an error ending
    with ``fix`` (what the user can do)."""
    bom = bom_encoding(sample)
    if bom:
        return bom
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as err:
        if err.start >= len(sample) - 4:  # a multi-byte character cut by the sample's end
            return "utf-8"
        first_bad = err.start
    guess = legacy_encoding(sample)
    if guess is None:
        raise DataError(
            f"file '{path}' is not UTF-8 text (byte 0x{sample[first_bad]:02x} at offset {first_bad}) and its "
            f"encoding could not be recognised; {fix}"
        )
    return guess


def _looks_numeric(text: str) -> bool:
    try:
        float(text.strip())
        return True
    except ValueError:
        return False


def sniff_header(rows: list[list[str]]) -> bool:
    """A first row of non-numeric names over data with numbers, or unseen values, is a header (repeated names
    too: reading the header as a data row would hide the mistake, so the reader refuses them by name)."""
    if len(rows) < 2:
        return True
    first = [cell.strip() for cell in rows[0]]
    # one blank name is allowed first: pandas' to_csv() writes the index so (",age,workclass")
    index_column = len(first) > 2 and not first[0]
    named = first[1:] if index_column else first
    if any(not cell or _looks_numeric(cell) for cell in named):
        return False
    body = rows[1:]
    if index_column:  # and below it the index: numbers
        index = [r[0].strip() for r in body if r]
        if sum(_looks_numeric(v) for v in index) < 0.8 * len(index):
            return False
    for col, name in enumerate(first):
        if not name:
            continue
        values = [r[col].strip() for r in body if col < len(r)]
        if values and sum(_looks_numeric(v) for v in values) >= 0.8 * len(values):
            return True
        if name in values:
            return False
    return True


def leading_comment_lines(lines: list[str]) -> int:
    """Count leading comment lines: '#' lines, or '|' lines without delimiters (UCI files such as adult.test)."""
    count = 0
    while count < len(lines) - 1:
        line = lines[count].lstrip()
        is_pipe_note = line.startswith("|") and not any(d in line[1:] for d in DELIMITERS)
        if not (line.startswith("#") or is_pipe_note):
            break
        count += 1
    return count


def consistent_delimiter(lines: list[str], preferred: str) -> str | None:
    """The delimiter that splits the first line into two or more fields and (quotes respected) at least 90 % of
    the sampled rows into as many — the file name's delimiter first on a tie; ``None`` when none does. Counting
    whole rows, not characters, keeps prose full of commas in a tab-separated file from looking comma-separated."""
    best: tuple[float, str] | None = None
    for sep in sorted(DELIMITERS, key=lambda d: d != preferred):
        rows = [row for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=sep) if row]
        if not rows or len(rows[0]) < 2:
            continue
        share = sum(len(row) == len(rows[0]) for row in rows) / len(rows)
        if best is None or share > best[0]:
            best = (share, sep)
    return best[1] if best is not None and best[0] >= 0.9 else None


def sniff_dialect(path: Path, sep: str | None, encoding: str | None, header: bool | None) -> CsvDialect:
    """Fill in whatever of delimiter, encoding and header the user left unset."""
    sample = read_sample(path)
    if not sample.strip():
        raise DataError(f"file '{path}' is empty; expected a header row and data rows")
    _refuse_binary_table(sample, path)
    encoding = encoding or sniff_encoding(sample, path)
    text = sample.decode(encoding, errors="ignore")
    lines = text.splitlines()
    if len(sample) == SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    skip_rows = leading_comment_lines(lines)
    blank_rows = 0
    while skip_rows + blank_rows < len(lines) - 1 and not lines[skip_rows + blank_rows].strip():
        blank_rows += 1
    lines = [line for line in lines[skip_rows:] if line.strip()][:200]
    if sep is None:
        by_name = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz", ".tab")) else ","
        sep = consistent_delimiter(lines, by_name)
    if sep is None:
        try:
            sep = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=DELIMITERS).delimiter
        except csv.Error:
            sep = by_name
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep, skipinitialspace=True))
    if header is None:
        header = sniff_header(rows)
    first_row = tuple(cell.strip() for cell in rows[0]) if rows else ()
    return CsvDialect(
        encoding, sep, header, skip_rows=skip_rows, blank_rows=blank_rows, fields=len(first_row), first_row=first_row
    )
