"""Word vectors: read/write the word2vec and GloVe text formats, nearest neighbours, embedding matrices.

Both formats hold one ``word v1 v2 ... vD`` line per word; word2vec files start with a ``count dim`` header
line, GloVe files do not. Files ending in ``.gz`` (or starting with the gzip magic bytes) are decompressed.
"""

from __future__ import annotations

import difflib
import gzip
import io
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from deepmine.exceptions import ConfigError, DataError, DeepmineWarning, SourceNotFoundError

_GZIP_MAGIC = b"\x1f\x8b"


class WordVectors:
    """Words and their vectors: ``words[i]`` has the row ``matrix[i]`` (float32, shape ``(len(words), dim)``)."""

    def __init__(self, words: Sequence[str], matrix: Any, source: str = "the vectors") -> None:
        self.words: list[str] = list(words)
        self.matrix: np.ndarray = np.ascontiguousarray(matrix, dtype=np.float32)
        self.source = source
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.words):
            raise DataError(
                f"{source}: {len(self.words)} words but a matrix of shape {self.matrix.shape}; "
                "expected one row per word"
            )
        first: dict[str, int] = {}
        for i, word in enumerate(self.words):
            first.setdefault(word, i)  # a repeated word keeps its first vector; its later rows are dropped
        if len(first) < len(self.words):
            keep = sorted(first.values())
            self.words, self.matrix = [self.words[i] for i in keep], self.matrix[keep]
        self.index: dict[str, int] = {word: i for i, word in enumerate(self.words)}
        self._unit: np.ndarray | None = None
        self._lower: dict[str, int] | None = None

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.matrix[self._require(word)]

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words × {self.dim} dims from {self.source})"

    def lookup(self, token: str) -> int | None:
        """Row of ``token``: the exact word, else its lower-case form, else the first word with the same
        lower-case form (files are frequency-sorted, so that is the most frequent casing); None if absent."""
        for candidate in (token, token.lower()):
            row = self.index.get(candidate)
            if row is not None:
                return row
        if self._lower is None:
            self._lower = {}
            for i, word in enumerate(self.words):
                self._lower.setdefault(word.lower(), i)
        return self._lower.get(token.lower())

    def nearest(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words most cosine-similar to ``word`` (itself excluded), most similar first."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        row = self._require(word)
        unit = self._unit_rows()
        sims = unit @ unit[row]
        sims[row] = -np.inf
        order = np.argsort(-sims, kind="stable")[: min(k, len(self) - 1)]
        return [(self.words[i], float(sims[i])) for i in order]

    def save(self, path: str | Path, precision: int = 6) -> Path:
        """Write the word2vec text format (``count dim`` header) atomically; gzip when ``path`` ends in .gz."""
        row_format = " ".join([f"%.{precision}g"] * self.dim) + "\n"
        with atomic_text_file(path) as handle:
            handle.write(f"{len(self)} {self.dim}\n")
            for word, row in zip(self.words, self.matrix.tolist(), strict=True):
                handle.write(f"{word} " + row_format % tuple(row))
        return Path(path)

    def _unit_rows(self) -> np.ndarray:
        if self._unit is None:
            norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
            self._unit = self.matrix / np.maximum(norms, np.finfo(np.float32).tiny)
        return self._unit

    def _require(self, word: str) -> int:
        row = self.index.get(word)
        if row is None:
            raise DataError(
                f"'{word}' is not in the {len(self):,}-word vocabulary of {self.source}{_close_spellings(word, self)}"
            )
        return row


def _close_spellings(word: str, vectors: WordVectors) -> str:
    """`` (close spellings: 'a', 'b')`` or, when nothing is close, a hint about the vocabulary."""
    row = vectors.lookup(word)
    close = [vectors.words[row]] if row is not None else []
    pool = [w for w in vectors.index if abs(len(w) - len(word)) <= 2]  # keeps difflib fast on large files
    close += [w for w in difflib.get_close_matches(word, pool, n=3, cutoff=0.6) if w not in close]
    if close:
        return " (close spellings: " + ", ".join(f"'{w}'" for w in close[:3]) + ")"
    return "; check the spelling and the casing the vectors were trained with"


# ---- reading ------------------------------------------------------------------------------------
def load_vectors(path: str | Path, limit: int | None = None) -> WordVectors:
    """Read a word2vec (with header) or GloVe (without) text-format file, optionally gzipped.

    ``limit`` keeps only the first ``limit`` vectors (files are usually sorted by frequency). Malformed
    lines raise a one-line :class:`DataError` naming ``file:line``."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"word-vectors file '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; expected a word2vec/GloVe text file such as vectors.txt")
    if _looks_binary(path):
        raise DataError(
            f"'{path}' looks like a binary word2vec file; deepmine reads the text format — convert it once with "
            "gensim: KeyedVectors.load_word2vec_format(path, binary=True).save_word2vec_format(out, binary=False)"
        )
    words: list[str] = []
    rows: list[np.ndarray] = []
    reader = _VectorLines(path)
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if limit is not None and len(words) >= limit:
                break
            line = _decode(raw, path, number)
            if not line:
                continue
            parsed = reader.parse(line, number)
            if parsed is not None:
                words.append(parsed[0])
                rows.append(parsed[1])
    if not words:
        what = "is empty" if reader.dim is None else "has a header but no vectors"
        raise DataError(f"word-vectors file '{path}' {what}; expected lines of 'word v1 v2 ...'")
    reader.check_count(len(words), limit)
    vectors = WordVectors(words, np.stack(rows), source=str(path))
    if len(vectors) < len(words):
        message = f"{path}: {len(words) - len(vectors)} repeated words; the first vector of each is kept"
        warnings.warn(message, DeepmineWarning, stacklevel=2)
    return vectors


def _looks_binary(path: Path) -> bool:
    """True when the file's first 4 KiB hold a NUL byte, as packed float32 vectors do and text never does."""
    with _open_binary(path) as handle:
        return b"\x00" in handle.read(4096)


class _VectorLines:
    """Parses the lines of one file: detects the header, fixes the dimension from the first vector line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dim: int | None = None
        self.dim_from = ""
        self.count: int | None = None

    def parse(self, line: str, number: int) -> tuple[str, np.ndarray] | None:
        """``(word, vector)`` for a vector line, None for the header line."""
        if self.dim is None:
            parts = line.split(" ")
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                self.count, self.dim = int(parts[0]), int(parts[1])
                self.dim_from = f"the header on line {number}"
                if self.dim < 1:
                    raise DataError(f"{self.path}:{number}: the header declares dimension 0; expected 'count dim'")
                return None
            if len(parts) < 2:
                raise DataError(f"{self.path}:{number}: '{_short(line)}' has no values; expected 'word v1 v2 ...'")
            self.dim, self.dim_from = len(parts) - 1, f"line {number}"
        parts = line.rsplit(" ", self.dim)  # the word may itself contain spaces (some GloVe files)
        where = f"{self.path}:{number}"
        if len(parts) != self.dim + 1 or not parts[0] or _ends_with_number(parts[0]):
            found = len(line.split(" ")) - 1
            raise DataError(
                f"{where}: {found} values after the word, expected {self.dim} (the dimension set by "
                f"{self.dim_from}); every line must be 'word v1 ... v{self.dim}' separated by single spaces"
            )
        try:
            vector = np.asarray(parts[1:], dtype=np.float32)
        except ValueError:
            bad = next(v for v in parts[1:] if not _is_number(v))
            raise DataError(f"{where}: value '{_short(bad)}' of word '{_short(parts[0])}' is not a number") from None
        if not np.isfinite(vector).all():
            raise DataError(f"{where}: word '{_short(parts[0])}' has a NaN or infinite value; expected finite numbers")
        return parts[0], vector

    def check_count(self, found: int, limit: int | None) -> None:
        expected = self.count if limit is None or self.count is None else min(limit, self.count)
        if expected is not None and found != expected:
            hint = "the file may be truncated" if found < expected else "fix the header's count"
            raise DataError(f"{self.path} holds {found} vectors but its header declares {expected}; {hint}")


def _decode(raw: bytes, path: Path, number: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r\n\t ").replace("\t", " ")  # some files separate with tabs
    except UnicodeDecodeError as err:
        raise DataError(f"{path}:{number}: not UTF-8 text ({err.reason}); re-save the file as UTF-8") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ends_with_number(word: str) -> bool:
    """A 'word' like ``cat 0.5`` means the line had one value too many, not a word with a space."""
    return " " in word and _is_number(word.rsplit(" ", 1)[1])


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as handle:
            yield handle
    except (OSError, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataError(f"word-vectors file '{path}' could not be read: {err}; the download may be damaged") from None


# ---- writing ------------------------------------------------------------------------------------
@contextmanager
def atomic_text_file(path: str | Path) -> Iterator[IO[str]]:
    """Yield a UTF-8 text handle on a temporary file beside ``path`` (gzip when it ends in .gz), renamed
    into place on success; on failure nothing is left behind and an existing file is untouched."""
    from deepmine.io_utils import check_output_file

    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            gzipped = path.suffix == ".gz"
            # filename="" and mtime=0 keep gzipped output byte-identical across runs
            binary = gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) if gzipped else raw
            text = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")
            yield text
            text.flush()
            text.detach()
            if gzipped:
                binary.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; vectors are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- embedding matrices -------------------------------------------------------------------------
def embedding_matrix(
    vectors: WordVectors, tokens: Sequence[str], dim: int | None = None, seed: int = 0
) -> tuple[np.ndarray, float]:
    """An embedding matrix with one row per token of a vocabulary (``Vocabulary.tokens``), and the coverage.

    Known tokens get their vector (exact word, else lower-case, see :meth:`WordVectors.lookup`); other
    tokens a random normal vector scaled to the vectors' standard deviation; ``<pad>`` a zero row.
    Coverage is the share of tokens found, not counting ``<pad>`` and ``<unk>``."""
    from deepmine.text.vocab import OOV_TOKEN, PAD_TOKEN

    if dim is not None and dim != vectors.dim:
        raise ConfigError(
            f"the embedding dimension is {dim} but {vectors.source} holds {vectors.dim}-dimensional vectors; "
            f"set the embedding dimension (text.embedding_dim) to {vectors.dim} or use {dim}-dimensional vectors"
        )
    tokens = list(getattr(tokens, "tokens", tokens))  # a Vocabulary works too
    std = float(vectors.matrix.std()) or 1.0
    matrix = np.random.default_rng(seed).normal(0.0, std, size=(len(tokens), vectors.dim)).astype(np.float32)
    found = counted = 0
    for i, token in enumerate(tokens):
        if token == PAD_TOKEN:
            matrix[i] = 0.0
            continue
        if token == OOV_TOKEN:
            continue
        counted += 1
        row = vectors.lookup(token)
        if row is not None:
            matrix[i] = vectors.matrix[row]
            found += 1
    return matrix, (found / counted if counted else 0.0)
