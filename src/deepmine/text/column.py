"""A text column of a table: tokenizer + vocabulary + padded id rows of a length taken from the data."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from deepmine.exceptions import ArtifactError, DeepmineWarning
from deepmine.text.tokenizers import _CJK, choose_tokenizer, make_tokenizer, tokenizer_from_state
from deepmine.text.vocab import OOV, Vocabulary


def as_texts(column: pd.Series) -> list[str]:
    """Every value as a string; missing values become empty texts."""
    return ["" if not isinstance(v, str) and pd.isna(v) else str(v) for v in column.astype(object)]


def _cut(words: list[str], chars: list[str], length: int | None) -> list[str]:
    """``words + chars`` cut to ``length``: cutting the end alone would drop every appended character of a long
    text, so each part keeps at least half of the room (more when the other part is shorter)."""
    if length is None or len(words) + len(chars) <= length:
        return words + chars
    kept = min(len(words), max(length // 2, length - len(chars)))
    return words[:kept] + chars[: length - kept]


def _cjk_chars(tokens: list[str]) -> list[str]:
    return [c for tok in tokens if _CJK.match(tok) for c in tok]


class TextColumnEncoder:
    """Fitted on the training texts: the tokenizer (chosen from the script when ``tokenizer`` is ``auto``), a
    vocabulary (``max_tokens`` most frequent, seen ``min_freq`` times) and ``length``, the ``percentile`` of
    the training token counts capped at ``max_length`` (or exactly ``max_length`` when ``fixed_length``).
    With ``chars`` a jieba-segmented text is followed by its CJK characters, so an n-gram encoder sees word and
    character n-grams (the boundary between the two adds one junk n-gram of each order)."""

    def __init__(
        self,
        tokenizer: str = "auto",
        max_tokens: int | None = 50000,
        min_freq: int = 2,
        max_length: int = 1000,
        percentile: float = 95.0,
        fixed_length: bool = False,
        subword_vocab: int = 16000,
        chars: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.min_freq = min_freq
        self.max_length = max_length
        self.percentile = percentile
        self.fixed_length = fixed_length
        self.subword_vocab = subword_vocab
        self.chars = chars
        self.reason = "set in text.tokenizer"
        self.length = 1
        self.length_stats: dict[str, float] = {}
        self._tok: Any = None
        self._vocab = Vocabulary()

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, column: pd.Series) -> TextColumnEncoder:
        texts = as_texts(column)
        if self.tokenizer == "auto":
            self.tokenizer, self.reason = choose_tokenizer(texts)
        self._tok = make_tokenizer(self.tokenizer, vocab_size=self.subword_vocab).fit(texts)
        sequences = [self._tok(text) for text in texts]
        if self.tokenizer == "jieba":  # characters join the vocabulary so unknown words can fall back to them
            sequences = [tokens + _cjk_chars(tokens) for tokens in sequences]
        self._vocab = Vocabulary.build(sequences, self.max_tokens, self.min_freq)
        if len(self._vocab) <= OOV + 1 and any(sequences):  # padding and unknown only
            warnings.warn(
                f"text column '{column.name}': no token is seen {self.min_freq} times in the training texts, so "
                "every word reads as unknown and the column tells the model nothing; lower text.min_freq",
                DeepmineWarning,
                stacklevel=2,
            )
        lengths = np.array([len(self.encode_tokens(text)) for text in texts] or [1])
        cut = float(np.percentile(lengths, self.percentile))
        self.length = self.max_length if self.fixed_length else int(min(self.max_length, max(1, np.ceil(cut))))
        self.length_stats = {
            "percentile": self.percentile,
            "at_percentile": round(cut, 1),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
            "truncated_share": round(float((lengths > self.length).mean()), 4),
        }
        return self

    # ---- transforming --------------------------------------------------------------------------
    @property
    def cardinality(self) -> int:
        return len(self._vocab)

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocab

    def encode_tokens(self, text: str, length: int | None = None) -> list[str]:
        """The tokens of ``text`` (at most ``length``); with jieba a word missing from the vocabulary falls back
        to its characters, and a cut keeps a share of both the words and the appended characters."""
        return self.encode_units(self._tok(text), length)

    def units(self, text: str) -> list[str]:
        """The tokenizer's tokens of ``text``: the units an explanation leaves out one at a time (with jieba a
        word goes with the characters appended for it)."""
        return self._tok(text)

    def read_units(self, tokens: list[str]) -> tuple[list[str], list[str]]:
        """``tokens`` split into the first ``length`` (the ones an explanation leaves out one at a time) and the
        fewest that follow them without changing what :meth:`encode_units` reads when one of the first is left
        out: the next token, which moves up, and with ``chars`` enough of them for ``length`` appended
        characters. The rest of a huge text is never read, so variants need not carry it."""
        shown, rest = tokens[: self.length], tokens[self.length :]
        if self.tokenizer != "jieba" or not self.chars:
            return shown, rest[:1]
        chars = 0
        for i, tok in enumerate(rest):
            if i >= 1 and chars >= self.length:
                return shown, rest[:i]
            chars += len(_cjk_chars([tok]))
        return shown, rest

    def encode_units(self, tokens: list[str], length: int | None = None) -> list[str]:
        """What :meth:`encode_tokens` makes of a text whose tokenizer tokens are ``tokens``."""
        if self.tokenizer != "jieba":
            return tokens[:length]
        chars = _cjk_chars(tokens) if self.chars else []
        if len(self._vocab) <= 2:  # fitting: the vocabulary is not built yet
            return _cut(tokens, chars, length)
        out: list[str] = []
        for tok in tokens:
            if len(tok) > 1 and tok not in self._vocab and _CJK.match(tok):
                out.extend(tok)
            else:
                out.append(tok)
        return _cut(out, chars, length)

    def transform(self, column: pd.Series | Iterable[Any]) -> np.ndarray:
        """(rows, length) int64 ids, 0-padded on the right, truncated to ``length``."""
        texts = as_texts(column if isinstance(column, pd.Series) else pd.Series(list(column), dtype=object))
        return self._ids((self._tok(text) for text in texts), len(texts))  # one text's tokens at a time

    def transform_units(self, rows: list[list[str]]) -> np.ndarray:
        """:meth:`transform` of texts given as their tokenizer tokens."""
        return self._ids(rows, len(rows))

    def _ids(self, rows: Iterable[list[str]], count: int) -> np.ndarray:
        out = np.zeros((count, self.length), dtype="int64")
        for row, tokens in enumerate(rows):
            ids = self._vocab.encode(self.encode_units(tokens, self.length))
            out[row, : len(ids)] = ids
        return out

    def describe(self, name: str) -> str:
        """One line for the CLI: tokenizer and why, vocabulary size, length and the percentile it came from."""
        stats = self.length_stats
        how = (
            f"fixed at {self.length}"
            if self.fixed_length
            else f"{self.length} tokens = {stats.get('percentile', 0):g}th percentile"
            + (f" capped at {self.max_length}" if stats.get("at_percentile", 0) > self.max_length else "")
        )
        return (
            f"text column '{name}': {self.tokenizer} tokenizer ({self.reason}); vocabulary {self.cardinality} "
            f"tokens; max_length {how} ({stats.get('truncated_share', 0):.1%} of training texts truncated)"
        )

    # ---- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        public = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {**public, "tokenizer_state": self._tok.state(), "vocabulary": self._vocab.state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextColumnEncoder:
        state = dict(state)
        try:
            tok_state, vocab_state = state.pop("tokenizer_state"), state.pop("vocabulary")
            encoder = cls()
            missing = sorted(set(vars(encoder)) - set(state) - {"_tok", "_vocab"})
            if missing:
                raise KeyError(missing)
        except KeyError as err:
            raise ArtifactError(
                f"the saved text column state lacks {err.args[0]}; re-create the artifact with `deepmine fit`"
            ) from err
        encoder.__dict__.update(state)
        encoder._tok = tokenizer_from_state(tok_state)
        encoder._vocab = Vocabulary.from_state(vocab_state)
        return encoder
