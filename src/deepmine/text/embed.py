"""Train word vectors on the user's own texts with gensim's Word2Vec (skip-gram or CBOW), deterministically.

A corpus is a .txt file (one document per line, .txt.gz too), a folder of .txt files (every line of every
file, files in sorted order), a table (CSV/Parquet/JSONL: the text column), a DataFrame/Series, or a list of
strings.
"""

from __future__ import annotations

import codecs
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepmine.exceptions import (
    ColumnError,
    ConfigError,
    DataError,
    SourceNotFoundError,
    did_you_mean,
    warn_user,
)
from deepmine.text.vectors import WordVectors

METHODS = ("skipgram", "cbow")
MAX_SENTENCE = 10_000  # gensim's compiled loop silently drops words past this many per sentence
_TEXT_SUFFIXES = (".txt", ".txt.gz")


@dataclass
class EmbedResult:
    """Trained vectors and what a person wants to read about the run."""

    vectors: WordVectors
    documents: int
    tokens: int
    tokenizer: str
    seconds: float


# ---- reading the corpus -------------------------------------------------------------------------
def read_documents(corpus: Any, column: str | None = None) -> tuple[list[str], str]:
    """The documents of ``corpus`` (blank ones dropped) and a short description of where they came from."""
    if isinstance(corpus, str | Path) and not _is_table_path(corpus):
        return _read_text_path(Path(corpus)), str(corpus)
    if isinstance(corpus, list | tuple):
        return [str(d) for d in corpus if str(d).strip()], f"a list of {len(corpus)} texts"
    import pandas as pd

    if isinstance(corpus, pd.Series):
        return _non_blank(corpus), f"the Series '{corpus.name}'"
    from deepmine.data.sources import describe, load_table

    frame = load_table(corpus)
    where = describe(corpus)
    name = _text_column(frame, column, where)
    return _non_blank(frame[name]), f"{where} (column '{name}')"


def _is_table_path(corpus: str | Path) -> bool:
    path = Path(corpus)
    return not path.is_dir() and not path.name.lower().endswith(_TEXT_SUFFIXES)


def _read_text_path(path: Path) -> list[str]:
    if not path.exists():
        raise SourceNotFoundError(f"corpus '{path}' does not exist; expected a .txt file, a folder or a table")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(_TEXT_SUFFIXES))
    files = files if path.is_dir() else [path]
    if not files:
        raise DataError(f"folder '{path}' holds no .txt files; expected text files with one document per line")
    docs: list[str] = []
    encodings = _encodings(files)
    legacy = {file: encoding for file, encoding in encodings.items() if not encoding.startswith("utf")}
    for file, encoding in encodings.items():
        docs.extend(line for line in _lines(file, encoding) if line.strip())
    if legacy:
        _warn_not_utf8(path, legacy, len(files))
    if not docs:
        raise DataError(f"corpus '{path}' holds no text; expected one document per line")
    return docs


def _encodings(files: list[Path]) -> dict[Path, str]:
    """The encoding of each corpus file, found from its first bytes as text folders' are: the one its byte-order
    mark names, else UTF-8, else one guess for all the files that are not UTF-8 together (GBK text: gb18030),
    else charset-normalizer's guess for the file alone (an error when there is none)."""
    from deepmine.data.csv_sniff import read_sample, sniff_encoding
    from deepmine.text.folders import pooled_encoding

    try:
        samples = {file: read_sample(file) for file in files}
    except OSError as err:
        raise DataError(f"could not read the corpus: {err}") from None
    found = {file: _utf_encoding(sample) for file, sample in samples.items()}
    legacy = [file for file, encoding in found.items() if encoding is None]
    pooled = pooled_encoding([samples[file] for file in legacy]) if legacy else None
    for file in legacy:
        fits = pooled is not None and _decodes(samples[file], pooled)
        found[file] = pooled if fits else sniff_encoding(samples[file], file, fix="re-save it as UTF-8")
    return found


def _utf_encoding(sample: bytes) -> str | None:
    """The UTF encoding of a file's first bytes (its byte-order mark's, else UTF-8 when they decode), else None."""
    from deepmine.data.csv_sniff import bom_encoding

    return bom_encoding(sample) or ("utf-8" if _decodes(sample, "utf-8") else None)


def _decodes(sample: bytes, encoding: str) -> bool:
    """Whether a file's first bytes are valid ``encoding`` (a character cut by the sample's end is fine)."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        return True
    except (UnicodeDecodeError, LookupError):
        return False


def _lines(path: Path, encoding: str) -> Iterator[str]:
    """The file's lines (a .gz one decompressed), decoded as they stream in, without their ends: a line ends at
    LF, CR LF or CR only (str.splitlines would also split at U+0085, U+2028 and other marks)."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding=encoding, newline="") as handle:
            for line in handle:
                yield line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(
            f"'{path}' starts as {encoding} text but a later byte is not {encoding} ({err.reason}); re-save the "
            "whole file as UTF-8"
        ) from None
    except (OSError, EOFError) as err:
        raise DataError(f"'{path}' could not be read: {err}") from None


def _warn_not_utf8(path: Path, legacy: dict[Path, str], total: int) -> None:
    """One line naming the corpus file (or, for a folder, how many of its files) not in UTF-8 and the encoding used."""
    if path.is_dir():
        from deepmine.text.folders import warn_not_utf8

        warn_not_utf8(path, next(iter(legacy)), len(legacy), total, Counter(legacy.values()), [])
        return
    warn_user(f"'{path}' is not UTF-8; read it as {legacy[path]}; re-save it as UTF-8 if its text looks wrong")


def _non_blank(values: Any) -> list[str]:
    texts = values.dropna().astype(str)
    return texts[texts.str.strip() != ""].tolist()


def _text_column(frame: Any, column: str | None, where: str) -> str:
    if column is not None:
        if column not in frame.columns:
            raise ColumnError(
                f"{where} has no column '{column}'{did_you_mean(column, frame.columns)}; "
                f"columns: {', '.join(map(str, frame.columns))}"
            )
        return column
    from deepmine.data.schema import infer_role

    text = [c for c in frame.columns if infer_role(frame[c], str(c))[0] == "text"]
    if len(text) == 1:
        return text[0]
    found = f"{len(text)} text columns ({', '.join(text)})" if text else "no free-text column"
    raise ColumnError(f"{where} has {found}; name the column to train on with --column")


# ---- tokenizing ---------------------------------------------------------------------------------
def resolve_tokenizer(docs: list[str], name: str = "auto") -> tuple[str, str]:
    """``(name, why)``: ``name`` itself, or for ``auto`` the text columns' choice from the script (jieba for
    mostly-CJK text, else word)."""
    from deepmine.text.tokenizers import TOKENIZERS, choose_tokenizer

    if name == "auto":
        chosen, reason = choose_tokenizer(docs)
        return chosen, f"chosen from the script: {reason}"
    if name not in TOKENIZERS:
        raise ConfigError(
            f"unknown tokenizer '{name}'{did_you_mean(name, TOKENIZERS)}; choose auto or one of {TOKENIZERS}"
        )
    return name, "as asked"


def tokenize(docs: list[str], name: str) -> list[list[str]]:
    """Token lists from the named tokenizer of :mod:`deepmine.text.tokenizers` (subword ones are fitted on
    ``docs``), interned (a corpus of millions of tokens then holds each distinct string once) and cut into
    pieces of at most :data:`MAX_SENTENCE` tokens."""
    from deepmine.text.tokenizers import make_tokenizer

    split = make_tokenizer(name).fit(docs)
    out: list[list[str]] = []
    for doc in docs:
        tokens = [sys.intern(t) for t in split(doc)]
        out.extend(tokens[i : i + MAX_SENTENCE] for i in range(0, len(tokens), MAX_SENTENCE))
    return out


# ---- training -----------------------------------------------------------------------------------
def stable_hash(text: str) -> int:
    """A hash that does not change with PYTHONHASHSEED (gensim seeds vectors with ``hashfxn``)."""
    return zlib.crc32(text.encode("utf-8"))


def train_vectors(
    corpus: Any,
    *,
    dim: int = 100,
    window: int = 5,
    min_count: int = 2,
    epochs: int = 5,
    method: str = "skipgram",
    column: str | None = None,
    tokenizer: str = "auto",
    seed: int = 0,
    workers: int = 1,
    on_epoch: Callable[[int, int], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> EmbedResult:
    """Train Word2Vec on ``corpus``; with one worker (the default) the same seed gives the same vectors
    (stable hashing); more workers train faster but their updates interleave differently on every run.

    ``on_stage(message)`` and ``on_epoch(done, total)`` report progress."""
    _check_settings(dim=dim, window=window, min_count=min_count, epochs=epochs, workers=workers, method=method)
    stage = on_stage or (lambda message: None)
    start = time.perf_counter()
    docs, where = read_documents(corpus, column)
    chosen, why = resolve_tokenizer(docs, tokenizer)
    stage(f"tokenizing {len(docs):,} documents from {where} with the {chosen} tokenizer ({why})")
    sentences = tokenize(docs, chosen)
    n_tokens = sum(len(s) for s in sentences)
    if n_tokens == 0:
        raise DataError(f"{where} yields no tokens with the {chosen} tokenizer; try --tokenizer char")
    stage(f"training {method} vectors ({dim} dims) on {n_tokens:,} tokens")
    settings = {"vector_size": dim, "window": window, "min_count": min_count, "seed": seed, "workers": workers}
    model = _fit_word2vec(sentences, settings, epochs, method, on_epoch, where)
    vectors = WordVectors(list(model.wv.index_to_key), model.wv.vectors, source=f"vectors trained on {where}")
    return EmbedResult(vectors, len(docs), n_tokens, chosen, time.perf_counter() - start)


def _check_settings(**values: Any) -> None:
    for name in ("dim", "window", "min_count", "epochs", "workers"):
        if values[name] < 1:
            raise ConfigError(f"{name} must be at least 1, got {values[name]}")
    if values["method"] not in METHODS:
        method = values["method"]
        raise ConfigError(f"unknown method '{method}'{did_you_mean(method, METHODS)}; choose skipgram or cbow")


def _fit_word2vec(sentences, settings, epochs, method, on_epoch, where):
    import logging

    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    class _Progress(CallbackAny2Vec):
        def __init__(self) -> None:
            self.done = 0

        def on_epoch_end(self, model) -> None:
            self.done += 1
            if on_epoch is not None:
                on_epoch(self.done, epochs)

    logging.getLogger("gensim").setLevel(logging.WARNING)
    model = Word2Vec(sg=1 if method == "skipgram" else 0, hashfxn=stable_hash, **settings)
    model.build_vocab(sentences)
    if len(model.wv) == 0:
        raise DataError(
            f"no word of {where} occurs at least min_count={settings['min_count']} times; lower --min-count or add text"
        )
    model.train(sentences, total_examples=model.corpus_count, epochs=epochs, callbacks=[_Progress()])
    return model
