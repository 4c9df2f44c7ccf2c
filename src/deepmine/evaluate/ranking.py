"""Ranking metrics for recommenders: HR@K, NDCG@K and MRR against sampled negatives; Recall@K and NDCG@K
over the full item catalogue. Names follow DESIGN.md's contract (``hr_at_10``, ``ndcg_at_10``)."""

from __future__ import annotations

import numpy as np


def sampled_ranks(positive: np.ndarray, negatives: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of each positive among its row of negatives; ties count against the positive.

    ``positive`` (n,), ``negatives`` (n, m); ``valid`` (n, m) masks padding (negatives that do not exist).
    """
    beats = negatives >= positive[:, None]
    if valid is not None:
        beats &= valid
    return beats.sum(axis=1)


def hit_rate(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ranks < k)) if len(ranks) else float("nan")


def ndcg_single(ranks: np.ndarray, k: int) -> float:
    """NDCG@K with one relevant item per row: 1/log2(rank + 2) when it is in the top K."""
    if not len(ranks):
        return float("nan")
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(gains.mean())


def mrr(ranks: np.ndarray) -> float:
    return float(np.mean(1.0 / (ranks + 1.0))) if len(ranks) else float("nan")


def sampled_metrics(ranks: np.ndarray, k: int) -> dict[str, float]:
    return {f"hr_at_{k}": hit_rate(ranks, k), f"ndcg_at_{k}": ndcg_single(ranks, k), "mrr": mrr(ranks)}


def full_ranking_metrics(top: list[np.ndarray], relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """Per-user averages of Recall@K, HR@K and NDCG@K (binary relevance) over the whole catalogue.

    ``top[u]``: the user's recommended items in order (already without training items); ``relevant[u]``: held-out
    items. Users with nothing held out are skipped.
    """
    recalls, hits, ndcgs = [], [], []
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    for ranked, truth in zip(top, relevant, strict=True):
        if len(truth) == 0:
            continue
        found = np.isin(ranked[:k], truth)
        recalls.append(found.sum() / len(truth))
        hits.append(float(found.any()))
        dcg = float((found * discounts[: len(found)]).sum())
        ideal = float(discounts[: min(k, len(truth))].sum())
        ndcgs.append(dcg / ideal)
    if not recalls:
        return {}
    return {
        f"recall_at_{k}": float(np.mean(recalls)),
        f"full_hr_at_{k}": float(np.mean(hits)),
        f"full_ndcg_at_{k}": float(np.mean(ndcgs)),
    }
