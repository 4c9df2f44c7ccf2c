"""A token vocabulary: frequency-ranked ids with padding (0) and out-of-vocabulary (1) ids."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PAD, OOV = 0, 1
PAD_TOKEN, OOV_TOKEN = "<pad>", "<unk>"


class Vocabulary:
    """Tokens ranked by training frequency; id 0 pads, id 1 stands for every unseen token."""

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        self.tokens: list[str] = [PAD_TOKEN, OOV_TOKEN, *tokens]
        self._index: dict[str, int] = {tok: i for i, tok in enumerate(self.tokens)}

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], max_tokens: int | None = None, min_freq: int = 1) -> Vocabulary:
        """Keep the ``max_tokens`` most frequent tokens seen at least ``min_freq`` times (ties: first seen)."""
        counts: Counter[str] = Counter()
        for tokens in sequences:
            counts.update(tokens)
        kept = [tok for tok, n in counts.most_common(max_tokens) if n >= min_freq]
        return cls(kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def id(self, token: str) -> int:
        """The id of ``token``, or the out-of-vocabulary id."""
        return self._index.get(token, OOV)

    def encode(self, tokens: Iterable[str], length: int | None = None) -> np.ndarray:
        """Ids of ``tokens``; truncated to ``length`` and padded with 0 up to it when given."""
        ids = [self._index.get(tok, OOV) for tok in tokens]
        if length is not None:
            ids = ids[:length] + [PAD] * max(0, length - len(ids))
        return np.asarray(ids, dtype="int64")

    def state(self) -> dict[str, Any]:
        """JSON-ready state (the ranked tokens after the two reserved ones)."""
        return {"tokens": self.tokens[2:]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Vocabulary:
        return cls(state["tokens"])
