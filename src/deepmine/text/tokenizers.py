"""Tokenizers by name: word, char, bpe, wordpiece, jieba — and the per-column default chosen from the script.

A tokenizer is fitted on the training texts (only the subword ones learn anything), turns one text into a list
of string tokens, and round-trips through a JSON-ready ``state()``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from deepmine.exceptions import ConfigError, did_you_mean

# a word with inner apostrophes kept ("don't", "o'clock"), else any single non-space, non-word mark
_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
CJK_SHARE = 0.3  # a column whose letters are at least this share CJK gets the jieba tokenizer
SAMPLE_TEXTS = 2000


class Tokenizer(Protocol):
    name: str

    def fit(self, texts: Sequence[str]) -> Tokenizer: ...

    def __call__(self, text: str) -> list[str]: ...

    def state(self) -> dict[str, Any]: ...


def normalize(text: str) -> str:
    """NFKC (full-width forms to ASCII, ligatures split) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


class WordTokenizer:
    """Lower-cased words; punctuation marks and symbols (emoji included) become tokens of their own."""

    name = "word"

    def fit(self, texts: Sequence[str]) -> WordTokenizer:
        return self

    def __call__(self, text: str) -> list[str]:
        return _WORD.findall(normalize(text))

    def state(self) -> dict[str, Any]:
        return {"name": self.name}


class CharTokenizer:
    """Every non-space character is a token."""

    name = "char"

    def fit(self, texts: Sequence[str]) -> CharTokenizer:
        return self

    def __call__(self, text: str) -> list[str]:
        return [c for c in normalize(text) if not c.isspace()]

    def state(self) -> dict[str, Any]:
        return {"name": self.name}


class JiebaTokenizer:
    """Chinese word segmentation (jieba's dictionary, HMM off: deterministic, and a run of characters missing
    from the dictionary falls back to single characters); runs of other scripts go through the word tokenizer.
    The column encoder also falls back to characters for a word missing from the trained vocabulary."""

    name = "jieba"

    def fit(self, texts: Sequence[str]) -> JiebaTokenizer:
        return self

    def __call__(self, text: str) -> list[str]:
        out: list[str] = []
        for piece in _jieba().lcut(normalize(text), HMM=False):
            if _CJK.match(piece):
                out.append(piece)
            elif not piece.isspace():
                out.extend(_WORD.findall(piece))
        return out

    def state(self) -> dict[str, Any]:
        return {"name": self.name}


_JIEBA: dict[str, Any] = {}


def _jieba() -> Any:
    """jieba's tokenizer, initialised once without its log lines on stderr."""
    if "tokenizer" not in _JIEBA:
        import logging

        import jieba

        jieba.setLogLevel(logging.ERROR)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        _JIEBA["tokenizer"] = tokenizer
    return _JIEBA["tokenizer"]


class SubwordTokenizer:
    """BPE or WordPiece learned on the training texts with the ``tokenizers`` library (state = its JSON)."""

    def __init__(self, name: str, vocab_size: int = 16000, tokenizer_json: str | None = None) -> None:
        self.name = name
        self.vocab_size = vocab_size
        self._tokenizer: Any = None
        if tokenizer_json is not None:
            from tokenizers import Tokenizer as HFTokenizer

            self._tokenizer = HFTokenizer.from_str(tokenizer_json)

    def fit(self, texts: Sequence[str]) -> SubwordTokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, normalizers, pre_tokenizers, trainers

        if self.name == "bpe":
            model, trainer = (
                models.BPE(unk_token="[UNK]"),
                trainers.BpeTrainer(vocab_size=self.vocab_size, special_tokens=["[UNK]"], show_progress=False),
            )
        else:
            model, trainer = (
                models.WordPiece(unk_token="[UNK]"),
                trainers.WordPieceTrainer(vocab_size=self.vocab_size, special_tokens=["[UNK]"], show_progress=False),
            )
        tokenizer = HFTokenizer(model)
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=False)]
        )
        tokenizer.train_from_iterator(list(texts), trainer=trainer)
        self._tokenizer = tokenizer
        return self

    def __call__(self, text: str) -> list[str]:
        if self._tokenizer is None:
            raise RuntimeError(f"the {self.name} tokenizer is used before fit")
        return self._tokenizer.encode(text).tokens

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "vocab_size": self.vocab_size, "tokenizer_json": self._tokenizer.to_str()}


_BUILDERS: dict[str, Callable[..., Tokenizer]] = {
    "word": lambda **_: WordTokenizer(),
    "char": lambda **_: CharTokenizer(),
    "jieba": lambda **_: JiebaTokenizer(),
    "bpe": lambda vocab_size=16000, tokenizer_json=None, **_: SubwordTokenizer("bpe", vocab_size, tokenizer_json),
    "wordpiece": lambda vocab_size=16000, tokenizer_json=None, **_: SubwordTokenizer(
        "wordpiece", vocab_size, tokenizer_json
    ),
}
TOKENIZERS = tuple(_BUILDERS)


def make_tokenizer(name: str, **options: Any) -> Tokenizer:
    """A fresh tokenizer by name (``options``: ``vocab_size`` for the subword ones)."""
    if name not in _BUILDERS:
        raise ConfigError(
            f"unknown tokenizer '{name}'{did_you_mean(name, _BUILDERS)}; set text.tokenizer to one of {TOKENIZERS}"
        )
    return _BUILDERS[name](**options)


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """The tokenizer saved by ``state()``."""
    return make_tokenizer(state["name"], **{k: v for k, v in state.items() if k != "name"})


def cjk_share(texts: Iterable[str]) -> float:
    """Share of CJK characters among the letters of ``texts``."""
    letters = cjk = 0
    for text in texts:
        letters += len(_LETTER.findall(text))
        cjk += len(_CJK.findall(text))
    return cjk / letters if letters else 0.0


def choose_tokenizer(texts: Sequence[str]) -> tuple[str, str]:
    """``(name, reason)``: jieba when a sample of the column is mostly CJK, else word."""
    share = cjk_share(texts[:SAMPLE_TEXTS])
    if share >= CJK_SHARE:
        return "jieba", f"{share:.0%} CJK characters"
    return "word", f"{share:.0%} CJK characters"


def dumps_state(tokenizer: Tokenizer) -> str:
    """The tokenizer's state as one JSON string (for logs and tests)."""
    return json.dumps(tokenizer.state(), sort_keys=True)
