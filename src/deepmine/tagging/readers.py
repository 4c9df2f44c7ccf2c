"""Readers of tagged sentences: CoNLL-style columns, JSONL ``tokens``/``tags`` lists, and plain text lines.

CoNLL: one token per line, columns split on whitespace, the LAST column the tag, the columns between the
token and the tag (POS, chunk...) optional per-token features; a blank line ends a sentence; ``-DOCSTART-``
lines are skipped. JSONL: one object per line with ``tokens`` and ``tags`` lists (and optionally
``features``: one list per feature column, each as long as ``tokens``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deepmine.exceptions import DataError, SourceNotFoundError

DOCSTART = "-DOCSTART-"
TOKEN_PATTERN = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]", re.UNICODE)


@dataclass
class Sentence:
    """Tokens, optional tags, and per-token feature columns (each a list as long as ``tokens``)."""

    tokens: list[str]
    tags: list[str] | None = None
    features: list[list[str]] = field(default_factory=list)


def _open(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"file '{path}' does not exist; pass a CoNLL or JSONL file of tagged sentences")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; pass a CoNLL or JSONL file of tagged sentences")
    return path


def is_jsonl(path: str | Path) -> bool:
    """JSONL by extension, or a first non-blank line that opens a JSON object."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); re-save it as UTF-8") from err


def read_conll(path: str | Path, tagged: bool = True, columns: int | None = None) -> list[Sentence]:
    """Sentences of a CoNLL-style file; every token line must hold the same number of columns.

    ``tagged``: the last column is the tag. ``columns``: the number of columns expected (else the first line's).
    """
    path = _open(path)
    sentences: list[Sentence] = []
    rows: list[list[str]] = []
    expected = columns
    minimum = 2 if tagged else 1
    for number, line in _lines(path):
        parts = line.split()
        if not parts or parts[0] == DOCSTART:
            if rows:
                sentences.append(_sentence(rows, tagged))
                rows = []
            continue
        if expected is None:
            expected = len(parts)
            if expected < minimum:
                raise DataError(
                    f"{path}:{number}: one column ('{parts[0]}'); a tagged CoNLL line needs the token and its tag "
                    "(token [features...] tag, separated by spaces or tabs)"
                )
        if len(parts) != expected:
            raise DataError(
                f"{path}:{number}: {len(parts)} columns where the file's lines have {expected}; every token line "
                "needs the same columns (token [features...] tag) — fix or remove that line"
            )
        rows.append(parts)
    if rows:
        sentences.append(_sentence(rows, tagged))
    return sentences


def _sentence(rows: list[list[str]], tagged: bool) -> Sentence:
    columns = list(map(list, zip(*rows, strict=True)))
    if tagged:
        return Sentence(columns[0], columns[-1], columns[1:-1])
    return Sentence(columns[0], None, columns[1:])


def read_jsonl(path: str | Path, tagged: bool = True) -> list[Sentence]:
    """Sentences of a JSONL file with ``tokens`` (and ``tags`` when ``tagged``) lists per line."""
    path = _open(path)
    sentences: list[Sentence] = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not valid JSON ({err.msg}); write one JSON object per line") from err
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with 'tokens' and 'tags' lists, got {type(row).__name__}")
        if "tokens" not in row and "text" in row and not tagged:
            sentences.append(Sentence(tokenize(str(row["text"]))))
            continue
        tokens = _string_list(row, "tokens", where)
        tags = _string_list(row, "tags", where) if tagged or "tags" in row else None
        if tags is not None and len(tags) != len(tokens):
            raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags; give one tag per token")
        features = row.get("features") or []
        if not isinstance(features, list) or any(not isinstance(f, list) or len(f) != len(tokens) for f in features):
            raise DataError(f"{where}: 'features' must be a list of lists, each as long as 'tokens' ({len(tokens)})")
        sentences.append(Sentence(tokens, tags, [[str(v) for v in f] for f in features]))
    return sentences


def _string_list(row: dict, key: str, where: str) -> list[str]:
    if key not in row:
        raise DataError(f"{where}: no '{key}' list; each line needs 'tokens' and 'tags' lists of equal length")
    value = row[key]
    if not isinstance(value, list) or any(not isinstance(v, str | int | float) for v in value):
        raise DataError(f"{where}: '{key}' must be a list of strings")
    return [str(v) for v in value]


def read_tagged(path: str | Path) -> list[Sentence]:
    """Tagged sentences from a CoNLL or JSONL file (chosen by extension / first line); at least one."""
    path = _open(path)
    sentences = read_jsonl(path) if is_jsonl(path) else read_conll(path)
    if not sentences:
        raise DataError(f"{path}: no sentences; expected token lines (token [features...] tag) or JSONL rows")
    widths = {len(s.features) for s in sentences}
    if len(widths) > 1:
        raise DataError(f"{path}: sentences carry different numbers of feature columns {sorted(widths)}; use one")
    return sentences


def tokenize(text: str) -> list[str]:
    """Split plain text into words and punctuation marks (each emoji or symbol a token of its own)."""
    return TOKEN_PATTERN.findall(text)


def read_for_prediction(path: str | Path, features: int) -> list[Sentence]:
    """Sentences to tag: JSONL (``tokens`` or ``text``), CoNLL (token [features] [tag]) or plain text lines (every
    line one sentence, a blank line an empty one, so predictions stay aligned with the input lines).

    A file is read as CoNLL when every token line has the same number of columns and it has blank lines between
    sentences or one token per line: ``features`` + 1 columns (token and features), + 2 (then the last is a tag and
    ignored), one column (tokens alone), or any other count whose last column holds tags (``O``, ``B-PER`` ...): a
    file with fewer or more feature columns than the model's, whose missing ones read as unknown.
    """
    path = _open(path)
    if is_jsonl(path):
        return read_jsonl(path, tagged=False)
    lines = [line for _, line in _lines(path)]
    width = conll_width(lines, features)
    if width is not None:
        tagged = width == features + 2 or (width not in (1, features + 1))
        return [Sentence(s.tokens, None, s.features) for s in read_conll(path, tagged=tagged, columns=width)]
    return [Sentence(tokenize(line)) for line in lines]  # one per line, blank lines too: output lines match input


TAG_PATTERN = re.compile(r"O|[BIESLU]-\S+")


def conll_width(lines: list[str], features: int) -> int | None:
    """The column count of CoNLL token lines (see :func:`read_for_prediction`), or None when ``lines`` are not."""
    rows = [line.split() for line in lines if line.strip() and line.split()[0] != DOCSTART]
    widths = {len(row) for row in rows}
    blank = any(not line.strip() for line in lines)
    if len(widths) != 1 or not (blank or widths == {1}):
        return None
    width = next(iter(widths))
    if width in (1, features + 1, features + 2):
        return width
    return width if all(TAG_PATTERN.fullmatch(row[-1]) for row in rows) else None


def looks_like_conll(path: str | Path, features: int) -> bool:
    """Whether a file (say a CoNLL file named .tsv) holds CoNLL token lines rather than a table."""
    return conll_width([line for _, line in _lines(_open(path))], features) is not None
