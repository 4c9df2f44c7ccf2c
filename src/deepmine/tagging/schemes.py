"""Tag schemes: IOB1, IOB2, BIOES and raw (one tag per token, no prefixes).

Spans are read from tags with conlleval's chunk rules (so a stray ``I-X`` after ``O`` starts a chunk, as
conlleval counts it); the model trains on BIOES and its output is written back in the file's scheme.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from deepmine.exceptions import DataError

SCHEMES = ("iob1", "iob2", "bioes", "raw")
INTERNAL = "bioes"
OUTSIDE = "O"


class Span(NamedTuple):
    """An entity: its type and token positions [start, end)."""

    type: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str]:
    """``B-PER`` → (``B``, ``PER``); ``O`` → (``O``, ``""``) — conlleval's split on the first hyphen."""
    prefix, hyphen, kind = tag.partition("-")
    return (prefix, kind) if hyphen else (tag, "")


def chunk_end(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval's endOfChunk, with S (single) handled like the BIOES ports of conlleval."""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev not in ("O", ".") and prev_type != kind


def chunk_start(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval's startOfChunk, with S handled like the BIOES ports of conlleval."""
    if tag in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != kind


def spans(tags: Sequence[str], scheme: str = "iob2") -> list[Span]:
    """The entities the tags mark (every non-O token is its own entity under ``raw``)."""
    if scheme == "raw":
        return [Span(tag, i, i + 1) for i, tag in enumerate(tags) if tag != OUTSIDE]
    out: list[Span] = []
    prev, prev_type, begin = OUTSIDE, "", -1
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, kind = split_tag(tag)
        if begin >= 0 and chunk_end(prev, prefix, prev_type, kind):
            out.append(Span(prev_type, begin, i))
            begin = -1
        if chunk_start(prev, prefix, prev_type, kind):
            begin = i
        prev, prev_type = prefix, kind
    return out


def check_prefixed(sentences: Sequence[Sequence[str]], where: str) -> None:
    """Raise a one-line :class:`DataError` naming the first tag without a B-/I-/E-/S- prefix in a file where most
    entity tags have one (a typo would otherwise turn the whole file into raw tags)."""
    prefixed, plain, stray = 0, 0, None
    for number, tags in enumerate(sentences, 1):
        for position, tag in enumerate(tags, 1):
            if tag == OUTSIDE:
                continue
            prefix, kind = split_tag(tag)
            if prefix in ("B", "I", "E", "S") and kind:
                prefixed += 1
                continue
            plain += 1
            if stray is None:
                stray = (number, position, tag)
    if stray is not None and prefixed > plain:
        number, position, tag = stray
        raise DataError(
            f"{where}: sentence {number}, token {position} has tag '{tag}', which is not in IOB/BIOES form "
            f"(B-, I-, E- or S- then a type, or O) while {prefixed} other tags are; fix that tag, or read every "
            "tag as a plain label with --set tagging.scheme=raw"
        )


def detect(sentences: Sequence[Sequence[str]]) -> str:
    """The scheme of tagged sentences: bioes (E-/S- seen), iob1 (a chunk opens with I-), iob2, or raw."""
    seen_prefixes: set[str] = set()
    opens_with_i = False
    for tags in sentences:
        prev_prefix, prev_type = OUTSIDE, ""
        for tag in tags:
            prefix, kind = split_tag(tag)
            if tag != OUTSIDE and (prefix not in ("B", "I", "E", "S") or not kind):
                return "raw"
            seen_prefixes.add(prefix)
            if prefix == "I" and (prev_prefix == OUTSIDE or prev_type != kind):
                opens_with_i = True
            prev_prefix, prev_type = prefix, kind
    if seen_prefixes & {"E", "S"}:
        return "bioes"
    return "iob1" if opens_with_i else "iob2"


def to_tags(found: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Tags in ``scheme`` for ``length`` tokens holding the entities ``found``."""
    tags = [OUTSIDE] * length
    previous: Span | None = None
    for span in found:
        size = span.end - span.start
        if scheme == "raw":
            tags[span.start : span.end] = [span.type] * size
        elif scheme == "bioes" and size == 1:
            tags[span.start] = f"S-{span.type}"
        elif scheme == "bioes":
            tags[span.start : span.end] = [f"B-{span.type}"] + [f"I-{span.type}"] * (size - 2) + [f"E-{span.type}"]
        else:
            adjacent = previous is not None and previous.end == span.start and previous.type == span.type
            first = "B" if scheme == "iob2" or adjacent else "I"
            tags[span.start : span.end] = [f"{first}-{span.type}"] + [f"I-{span.type}"] * (size - 1)
        previous = span
    return tags


def convert(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Re-write ``tags`` from one scheme into another."""
    if source == target:
        return list(tags)
    return to_tags(spans(tags, source), len(tags), target)


def check_scheme(name: str, where: str) -> str:
    name = name.lower()
    if name not in SCHEMES:
        raise DataError(f"{where}: unknown tag scheme '{name}'; use one of {', '.join(SCHEMES)} (or auto)")
    return name


def internal_tags(types: Sequence[str], scheme: str) -> list[str]:
    """Every tag the model may emit: ``O`` then the internal scheme's tags per entity type."""
    if scheme == "raw":
        return [OUTSIDE, *[t for t in types if t != OUTSIDE]]
    return [OUTSIDE, *[f"{p}-{t}" for t in types for p in ("B", "I", "E", "S")]]


def allowed_transitions(tags: Sequence[str], scheme: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BIOES constraints (from → to, start, end): I/E continue a B/I of their type; B/S/O follow O/E/S."""
    n = len(tags)
    if scheme == "raw":
        return torch.ones(n, n, dtype=torch.bool), torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)
    parts = [split_tag(t) for t in tags]
    closed = [p in ("O", "E", "S") for p, _ in parts]  # a chunk may start after these
    opens = [p in ("O", "B", "S") for p, _ in parts]  # these may follow a closed chunk
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for i, (p1, k1) in enumerate(parts):
        for j, (p2, k2) in enumerate(parts):
            inside = p1 in ("B", "I") and p2 in ("I", "E") and k1 == k2
            allowed[i, j] = inside or (closed[i] and opens[j])
    return allowed, torch.tensor(opens), torch.tensor(closed)
