"""Sentences → id arrays (words, characters, casing, feature columns, tags) and padded, length-bucketed batches."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deepmine.tagging.readers import Sentence
from deepmine.tagging.schemes import INTERNAL, convert, internal_tags, spans
from deepmine.text.vocab import OOV, Vocabulary

DIGITS = re.compile(r"\d")
CASINGS = ("numeric", "mostly_numeric", "lower", "upper", "title", "has_digit", "punct", "other")
PAD_TAG = -1


def casing(token: str) -> int:
    """Casing class id (1-based; 0 pads): numeric, mostly numeric, lower, upper, title, has digit, punct, other."""
    digits = sum(c.isdigit() for c in token)
    if token.isdigit():
        found = "numeric"
    elif digits / max(len(token), 1) > 0.5:
        found = "mostly_numeric"
    elif token.islower():
        found = "lower"
    elif token.isupper():
        found = "upper"
    elif token[:1].isupper():
        found = "title"
    elif digits:
        found = "has_digit"
    elif token and not any(c.isalnum() for c in token):
        found = "punct"
    else:
        found = "other"
    return CASINGS.index(found) + 1


@dataclass
class Encoded:
    """One sentence as arrays: words (T,), chars (T, C), casing (T,), features (F, T), tags (T,) or None."""

    words: np.ndarray
    chars: np.ndarray
    casing: np.ndarray
    features: np.ndarray
    tags: np.ndarray | None


class TagEncoder:
    """Vocabularies of words, characters, feature values and tags, built from training sentences."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.words = Vocabulary.from_state(state["words"])
        self.chars = Vocabulary.from_state(state["chars"])
        self.features = [Vocabulary.from_state(s) for s in state["features"]]
        self.tags: list[str] = state["tags"]
        self.tag_index = {t: i for i, t in enumerate(self.tags)}

    @classmethod
    def build(cls, sentences: Sequence[Sentence], prep: Any, scheme: str, use_features: bool) -> TagEncoder:
        """Fit the vocabularies; ``prep`` is the ``tagging`` config section, ``scheme`` the file's tag scheme."""
        norm = {"lowercase": prep.lowercase, "digits": prep.digits}
        words = Vocabulary.build(
            ([normalize(t, **norm) for t in s.tokens] for s in sentences), prep.max_words, prep.min_freq
        )
        counts: dict[str, int] = {}
        for s in sentences:
            for t in s.tokens:
                key = normalize(t, **norm)
                counts[key] = counts.get(key, 0) + 1
        singles = [i for i, tok in enumerate(words.tokens) if i > OOV and counts.get(tok, 0) == 1]
        chars = Vocabulary.build(s.tokens for s in sentences)  # a str is an iterable of its characters
        width = len(sentences[0].features) if use_features else 0
        features = [Vocabulary.build(s.features[k] for s in sentences) for k in range(width)]
        types = sorted({span.type for s in sentences for span in spans(s.tags or [], scheme)})
        if scheme == "raw":
            types = sorted({t for s in sentences for t in s.tags or []} - {"O"})
        state = {
            **norm,
            "scheme": scheme,
            "internal": "raw" if scheme == "raw" else INTERNAL,
            "max_chars": prep.max_chars,
            "file_features": len(sentences[0].features),  # feature columns of the training file (used or not)
            "words": words.state(),
            "singletons_from": min(singles) if singles else len(words),
            "chars": chars.state(),
            "features": [f.state() for f in features],
            "types": types,
            "tags": internal_tags(types, "raw" if scheme == "raw" else INTERNAL),
        }
        return cls(state)

    @property
    def internal(self) -> str:
        return self.state["internal"]

    def sizes(self) -> dict[str, Any]:
        return {
            "words": len(self.words),
            "chars": len(self.chars),
            "casings": len(CASINGS) + 1,
            "features": [len(f) for f in self.features],
            "tags": len(self.tags),
        }

    def encode(self, sentence: Sentence, scheme: str | None = None) -> Encoded:
        """Arrays of one sentence; its tags (in ``scheme``, default the training file's) when it has them."""
        norm = [normalize(t, self.state["lowercase"], self.state["digits"]) for t in sentence.tokens]
        limit = self.state["max_chars"]
        width = max((min(len(t), limit) for t in sentence.tokens), default=1)
        chars = np.zeros((len(sentence.tokens), max(width, 1)), dtype=np.int64)
        for i, token in enumerate(sentence.tokens):
            ids = self.chars.encode(token[:limit])
            chars[i, : len(ids)] = ids
        features = np.zeros((len(self.features), len(sentence.tokens)), dtype=np.int64)
        for k, vocab in enumerate(self.features):
            if k < len(sentence.features):
                features[k] = vocab.encode(sentence.features[k])
            else:
                features[k] = OOV  # plain text has no feature columns: the unknown value
        tags = None
        if sentence.tags is not None:
            internal = convert(sentence.tags, scheme or self.state["scheme"], self.internal)
            tags = np.asarray([self.tag_index.get(t, 0) for t in internal], dtype=np.int64)  # unseen types → O
        return Encoded(
            self.words.encode(norm),
            chars,
            np.asarray([casing(t) for t in sentence.tokens], dtype=np.int64),
            features,
            tags,
        )


def normalize(token: str, lowercase: bool = True, digits: bool = True) -> str:
    if lowercase:
        token = token.lower()
    return DIGITS.sub("0", token) if digits else token


def collate(items: Sequence[Encoded]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Pad a batch: inputs [words, chars, casing, features, lengths] and tags (``PAD_TAG`` past each end)."""
    lengths = np.asarray([len(e.words) for e in items], dtype=np.int64)
    steps = int(lengths.max(initial=1))
    width = max((e.chars.shape[1] for e in items), default=1)
    count = len(items)
    words = np.zeros((count, steps), dtype=np.int64)
    casings = np.zeros((count, steps), dtype=np.int64)
    chars = np.zeros((count, steps, width), dtype=np.int64)
    features = np.zeros((count, items[0].features.shape[0], steps), dtype=np.int64)
    tags = np.full((count, steps), PAD_TAG, dtype=np.int64)
    for i, e in enumerate(items):
        n = len(e.words)
        words[i, :n], casings[i, :n] = e.words, e.casing
        chars[i, :n, : e.chars.shape[1]] = e.chars
        features[i, :, :n] = e.features
        if e.tags is not None:
            tags[i, :n] = e.tags
    inputs = [torch.from_numpy(a) for a in (words, chars, casings, features, lengths)]
    return inputs, torch.from_numpy(tags)


class TagBatches:
    """Length-bucketed batches of encoded sentences for the Trainer; rare words dropped to unknown at random, and
    whole sentences' feature columns read as unknown at random (as plain text reads them)."""

    POOL = 50  # batches per pool: sentences are shuffled, sorted by length within a pool, then cut

    def __init__(
        self,
        items: Sequence[Encoded],
        batch_size: int,
        word_dropout: float,
        singletons_from: int,
        feature_dropout: float = 0.0,
    ) -> None:
        self.items = list(items)
        self.rows = len(self.items)
        self.batch_size = max(1, min(batch_size, self.rows))
        self.word_dropout = word_dropout
        self.feature_dropout = feature_dropout
        self.singletons_from = singletons_from
        self.lengths = torch.tensor([len(e.words) for e in self.items])

    def steps(self) -> int:
        return -(-self.rows // self.batch_size)

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
        order = torch.randperm(self.rows, generator=generator)
        pool = self.batch_size * self.POOL
        batches = []
        for begin in range(0, self.rows, pool):
            chunk = order[begin : begin + pool]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches.extend(torch.split(chunk, self.batch_size))
        for b in torch.randperm(len(batches), generator=generator).tolist():
            inputs, tags = collate([self.items[i] for i in batches[b].tolist()])
            if self.word_dropout > 0:
                words = inputs[0]
                rare = words >= self.singletons_from
                drop = torch.rand(words.shape, generator=generator) < self.word_dropout
                inputs[0] = words.masked_fill(rare & drop, OOV)
            features = inputs[3]
            if self.feature_dropout > 0 and features.shape[1]:
                plain = torch.rand(len(features), generator=generator) < self.feature_dropout
                inputs[3] = features.masked_fill(plain[:, None, None] & (features != 0), OOV)  # padding stays 0
            yield inputs, tags


def by_length(items: Sequence[Encoded], batch_size: int) -> Iterator[tuple[np.ndarray, list[Encoded]]]:
    """Batches of non-empty sentences sorted by length (for prediction): (positions, items)."""
    order = sorted((i for i, e in enumerate(items) if len(e.words)), key=lambda i: len(items[i].words))
    for begin in range(0, len(order), batch_size):
        chosen = np.asarray(order[begin : begin + batch_size])
        yield chosen, [items[i] for i in chosen]
