"""Text columns in tables: a word tokenizer, a frequency vocabulary, padded token ids."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from deepmine.features.state import restore

PAD, UNKNOWN = 0, 1
RESERVED = 2
_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _WORD.findall(text.lower())


class TextEncoder:
    """Vocabulary of the most frequent words; texts become fixed-length id rows (0 = padding)."""

    def __init__(self, vocab_size: int = 20000, max_tokens: int = 256, min_count: int = 2) -> None:
        self.vocab_size = vocab_size
        self.max_tokens = max_tokens
        self.min_count = min_count
        self.vocabulary: list[str] = []
        self.length = 1

    def fit(self, column: pd.Series) -> TextEncoder:
        counts: Counter[str] = Counter()
        lengths = []
        for text in column.dropna().astype(str):
            tokens = tokenize(text)
            counts.update(tokens)
            lengths.append(len(tokens))
        common = [w for w, c in counts.most_common(self.vocab_size) if c >= self.min_count]
        self.vocabulary = common or [w for w, _ in counts.most_common(self.vocab_size)]
        self.length = int(min(self.max_tokens, max(1, np.percentile(lengths, 95) if lengths else 1)))
        return self

    @property
    def cardinality(self) -> int:
        return RESERVED + len(self.vocabulary)

    def transform(self, column: pd.Series) -> np.ndarray:
        lookup = {w: i + RESERVED for i, w in enumerate(self.vocabulary)}
        out = np.zeros((len(column), self.length), dtype="int64")
        for row, text in enumerate(column.astype(object)):
            if not isinstance(text, str):
                continue
            ids = [lookup.get(tok, UNKNOWN) for tok in tokenize(text)[: self.length]]
            out[row, : len(ids)] = ids
        return out

    def state(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextEncoder:
        return restore(cls(), state)
