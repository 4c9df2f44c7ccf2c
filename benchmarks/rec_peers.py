"""Classical recommendation peers for the movielens benchmark, written plainly (one child process each).

    python benchmarks/rec_peers.py means FOLDER          global / user / item mean over u1..u5
    python benchmarks/rec_peers.py funk-svd FOLDER       biased MF trained by per-rating SGD over u1..u5
    python benchmarks/rec_peers.py popularity TRAIN TEST most-interacted unseen items, leave-last-out protocol

Each prints one JSON object on stdout. The biased MF is Funk's SVD as the Surprise library runs it by default
(100 factors, 20 epochs, learning rate 0.005, regularization 0.02, factors drawn from N(0, 0.1)): the "SVD"
of the published ML-100k tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

FOLDS = range(1, 6)


def read(path: Path) -> np.ndarray:
    """user, item, rating, timestamp as int64 (MovieLens tab-separated files)."""
    return np.loadtxt(path, dtype=np.int64, delimiter="\t")


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - truth)))


def fold_files(folder: Path, fold: int) -> tuple[np.ndarray, np.ndarray]:
    return read(folder / f"u{fold}.base"), read(folder / f"u{fold}.test")


def means(folder: Path) -> dict:
    """Global mean; user mean and item mean (the global mean for users or items without ratings)."""
    out: dict[str, dict[str, list[float]]] = {name: {"rmse": [], "mae": []} for name in ("global", "user", "item")}
    fit_seconds = predict_seconds = 0.0
    for fold in FOLDS:
        base, test = fold_files(folder, fold)
        started = time.perf_counter()
        mu = base[:, 2].mean()
        tables = {}
        for name, col in (("user", 0), ("item", 1)):
            size = max(base[:, col].max(), test[:, col].max()) + 1
            sums = np.bincount(base[:, col], base[:, 2], size)
            counts = np.bincount(base[:, col], minlength=size)
            tables[name] = np.where(counts > 0, sums / np.maximum(counts, 1), mu)
        fit_seconds += time.perf_counter() - started
        started = time.perf_counter()
        truth = test[:, 2].astype(float)
        preds = {
            "global": np.full(len(test), mu),
            "user": tables["user"][test[:, 0]],
            "item": tables["item"][test[:, 1]],
        }
        predict_seconds += time.perf_counter() - started
        for name, pred in preds.items():
            out[name]["rmse"].append(rmse(pred, truth))
            out[name]["mae"].append(mae(pred, truth))
    return {"folds": out, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds}


def funk_svd(folder: Path, factors: int = 100, epochs: int = 20, lr: float = 0.005, reg: float = 0.02) -> dict:
    per_fold: dict[str, list[float]] = {"rmse": [], "mae": []}
    fit_seconds = predict_seconds = 0.0
    for fold in FOLDS:
        base, test = fold_files(folder, fold)
        rng = np.random.default_rng(fold)
        n_users = max(base[:, 0].max(), test[:, 0].max()) + 1
        n_items = max(base[:, 1].max(), test[:, 1].max()) + 1
        started = time.perf_counter()
        mu = base[:, 2].mean()
        bu, bi = np.zeros(n_users), np.zeros(n_items)
        p, q = rng.normal(0, 0.1, (n_users, factors)), rng.normal(0, 0.1, (n_items, factors))
        users, items, ratings = base[:, 0], base[:, 1], base[:, 2].astype(float)
        for _ in range(epochs):
            for row in rng.permutation(len(base)):
                u, i = users[row], items[row]
                err = ratings[row] - (mu + bu[u] + bi[i] + p[u] @ q[i])
                bu[u] += lr * (err - reg * bu[u])
                bi[i] += lr * (err - reg * bi[i])
                pu = p[u].copy()
                p[u] += lr * (err * q[i] - reg * pu)
                q[i] += lr * (err * pu - reg * q[i])
        fit_seconds += time.perf_counter() - started
        started = time.perf_counter()
        tu, ti = test[:, 0], test[:, 1]
        pred = np.clip(mu + bu[tu] + bi[ti] + np.einsum("nk,nk->n", p[tu], q[ti]), 1, 5)
        predict_seconds += time.perf_counter() - started
        per_fold["rmse"].append(rmse(pred, test[:, 2]))
        per_fold["mae"].append(mae(pred, test[:, 2]))
    return {"folds": per_fold, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds}


def popularity(train_path: Path, test_path: Path, negatives: int = 99, k: int = 10, seed: int = 42) -> dict:
    """Score = training interactions of the item; each held-out item is ranked against ``negatives`` items the
    user never interacted with (train or test), drawn uniformly."""
    train, test = read(train_path), read(test_path)
    started = time.perf_counter()
    n_items = max(train[:, 1].max(), test[:, 1].max()) + 1
    counts = np.bincount(train[:, 1], minlength=n_items).astype(float)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    catalogue = np.unique(train[:, 1])
    ranks = []
    for user, item in test[:, :2]:
        had = set(train[train[:, 0] == user, 1].tolist()) | set(test[test[:, 0] == user, 1].tolist())
        pool = np.array([x for x in catalogue if x not in had])
        negs = rng.choice(pool, min(negatives, len(pool)), replace=False)
        ranks.append(int((counts[negs] >= counts[item]).sum()))
    ranks_arr = np.array(ranks)
    hit = ranks_arr < k
    return {
        "hr_at_10": float(hit.mean()),
        "ndcg_at_10": float(np.where(hit, 1 / np.log2(ranks_arr + 2), 0).mean()),
        "mrr": float((1 / (ranks_arr + 1)).mean()),
        "rows": len(test),
        "fit_seconds": fit_seconds,
        "predict_seconds": time.perf_counter() - started,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rec_peers.py")
    parser.add_argument("peer", choices=["means", "funk-svd", "popularity"])
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.peer == "means":
        result = means(args.paths[0])
    elif args.peer == "funk-svd":
        result = funk_svd(args.paths[0])
    else:
        result = popularity(args.paths[0], args.paths[1])
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
