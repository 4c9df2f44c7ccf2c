"""Word n-grams over padded id rows: integer keys, the training n-gram table and Naive-Bayes log-count ratios.

An n-gram of word ids ``(a, b, c)`` over a vocabulary of ``V`` ids has the key ``offset_n + ((a·V)+b)·V + c``
(offsets keep orders apart), so n-grams are found with vectorised integer arithmetic and a sorted-key
search instead of string joins. The table keeps the n-grams present in at least ``min_df`` training texts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deepmine.exceptions import ConfigError

KEY_LIMIT = 2**62


def check_orders(cardinality: int, orders: int) -> None:
    """n-gram keys must fit in int64."""
    if orders < 1 or (cardinality + 1) ** orders >= KEY_LIMIT:
        raise ConfigError(
            f"text.ngrams={orders} with a vocabulary of {cardinality} tokens overflows the n-gram keys; "
            "lower text.ngrams or text.max_tokens"
        )


def ngram_keys(ids: torch.Tensor, cardinality: int, orders: int) -> torch.Tensor:
    """(rows, ≤ orders·length) keys of every 1..``orders``-gram of each row, each distinct key once per row,
    -1 where an n-gram touches padding or repeats."""
    parts = [torch.where(ids > 0, ids, -1)]
    key, valid, offset = ids, ids > 0, 0
    for n in range(2, orders + 1):
        offset += cardinality ** (n - 1)
        key = key[:, :-1] * cardinality + ids[:, n - 1 :]
        valid = valid[:, :-1] & (ids[:, n - 1 :] > 0)
        parts.append(torch.where(valid, key + offset, -1))
    keys = torch.cat(parts, dim=1).sort(dim=1).values
    repeat = torch.zeros_like(keys, dtype=torch.bool)
    repeat[:, 1:] = keys[:, 1:] == keys[:, :-1]
    return keys.masked_fill(repeat, -1)


def lookup(table: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Row ids into ``table`` (sorted keys) shifted by one; 0 for keys not in the table and for -1."""
    if len(table) == 0:
        return torch.zeros_like(keys)
    pos = torch.searchsorted(table, keys).clamp(max=len(table) - 1)
    found = (table[pos] == keys) & (keys >= 0)
    return torch.where(found, pos + 1, 0)


_shared = threading.local()


@contextmanager
def shared_table_rows() -> Iterator[None]:
    """Inside this block :func:`table_rows` looks up each ids tensor in each table once: the members of an
    ensemble that read one text column through the same n-gram table (the network and the solved linear
    members) share the n-gram keys and their search instead of repeating them per member."""
    outermost = getattr(_shared, "entries", None) is None
    if outermost:
        _shared.entries = []
    try:
        yield
    finally:
        if outermost:
            _shared.entries = None


def table_rows(table: torch.Tensor, ids: torch.Tensor, cardinality: int, orders: int) -> torch.Tensor:
    """``lookup(table, ngram_keys(ids, cardinality, orders))``, computed once per ids tensor and table contents
    inside :func:`shared_table_rows` (the entries hold the ids tensors, so none is freed and its address reused
    while the block runs)."""
    entries = getattr(_shared, "entries", None)
    if entries is not None:
        for seen_table, seen_ids, key, rows in entries:
            if seen_ids is not ids or key != (cardinality, orders):
                continue
            if seen_table is table or (seen_table.shape == table.shape and torch.equal(seen_table, table)):
                return rows
    rows = lookup(table, ngram_keys(ids, cardinality, orders))
    if entries is not None:
        entries.append((table, ids, (cardinality, orders), rows))
    return rows


@dataclass
class NgramTable:
    """The kept n-gram keys (sorted) and, for classification, per-class Naive-Bayes log-count ratios."""

    keys: np.ndarray
    ratios: np.ndarray | None
    fold_ratios: np.ndarray | None = None
    linear: dict[str, Any] = field(default_factory=dict)  # fitted linear members by name (text.linear.LinearFit)

    @classmethod
    def fit(
        cls,
        ids: np.ndarray,
        cardinality: int,
        orders: int,
        min_df: int,
        max_ngrams: int | None,
        labels: np.ndarray | None = None,
        chunk: int = 2048,
        folds: int = 1,
        alpha: float = 1.0,
    ) -> NgramTable:
        """Count document frequencies over the training rows; ``labels`` (rows, classes) 0/1 indicators give
        the ratio ``log(p_c/|p_c|) - log(q_c/|q_c|)`` per class c (p: texts of c, q: the others, add-``alpha``);
        with ``folds`` > 1 also ``fold_ratios`` (folds, rows, classes): fold f's from the rows outside fold f
        (``row_folds``), for training without ratios counted on the row itself."""
        check_orders(cardinality, orders)
        rows = [
            ngram_keys(torch.from_numpy(ids[i : i + chunk]), cardinality, orders) for i in range(0, len(ids), chunk)
        ]
        flat = torch.cat([r.flatten() for r in rows]) if rows else torch.zeros(0, dtype=torch.int64)
        flat = flat[flat >= 0].numpy()
        keys, df = np.unique(flat, return_counts=True)
        keep = df >= min_df
        keys, df = keys[keep], df[keep]
        if max_ngrams is not None and len(keys) > max_ngrams:
            top = np.sort(np.argsort(-df, kind="stable")[:max_ngrams])
            keys = keys[top]
        table = cls(keys, None)
        if labels is not None:
            table.ratios, table.fold_ratios = table._ratios(ids, rows, labels, folds, alpha)
        return table

    def _ratios(
        self, ids: np.ndarray, rows: list[torch.Tensor], labels: np.ndarray, folds: int, alpha: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Ratios from every training row, and with ``folds`` > 1 one set per fold from the other folds' rows."""
        table = torch.from_numpy(self.keys)
        counts = np.zeros((max(folds, 1), len(self.keys) + 1, labels.shape[1]), dtype="float64")
        start = 0
        for block in rows:
            idx = lookup(table, block).numpy()
            y = labels[start : start + len(block)]
            fold = row_folds(torch.from_numpy(ids[start : start + len(block)]), max(folds, 1)).numpy()
            start += len(block)
            for f in range(counts.shape[0]):
                for c in range(labels.shape[1]):
                    counts[f, :, c] += np.bincount(idx[(y[:, c] > 0) & (fold == f)].ravel(), minlength=counts.shape[1])
        total = counts.sum(0)
        full = _nb_ratios(total, alpha)
        if folds <= 1:
            return full, None
        return full, np.stack([_nb_ratios(total - counts[f], alpha) for f in range(folds)])


def row_folds(ids: torch.Tensor, folds: int) -> torch.Tensor:
    """A fold per row from its ids alone (same text, same fold), so training can find a row's fold again."""
    weights = torch.arange(1, ids.shape[1] + 1, dtype=torch.int64, device=ids.device)
    return (ids * weights).sum(1) % folds


def _nb_ratios(counts: np.ndarray, alpha: float) -> np.ndarray:
    """``log(p_c/|p_c|) - log(q_c/|q_c|)`` per n-gram row and class (row 0, padding, gets 0)."""
    present = counts[1:]
    total = present.sum(axis=1, keepdims=True)
    p, q = present + alpha, total - present + alpha
    ratios = np.log(p / p.sum(axis=0)) - np.log(q / q.sum(axis=0))
    return np.concatenate([np.zeros((1, counts.shape[1])), ratios]).astype("float32")
