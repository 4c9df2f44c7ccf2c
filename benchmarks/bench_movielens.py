"""movielens: MovieLens-100k through the real CLI (`deepmine recommend` + `deepmine evaluate`) against classical
peers, every contender a child process of the runner.

Ratings: the 5-fold u1..u5 base/test splits as GroupLens ships them; RMSE and MAE averaged over the folds.
deepmine defaults (an MF + NeuMF + MF ensemble), deepmine `--model mf` (one biased MF), Funk's SVD by per-rating
SGD (Surprise's defaults), and the global, user and item means.

Implicit top-K: leave-last-out. Each user's latest rating in u.data (by timestamp; ties by file order) is the test
item, the rest is training; every rating counts as an interaction. Each test item is ranked against 99 items the
user never interacted with, drawn uniformly; HR@10, NDCG@10, MRR. deepmine defaults (GRU4Rec, since the log has
timestamps), deepmine `--model neumf` (NCF: BCE with 4 sampled negatives), deepmine `--model mf` (BPR), and item
popularity.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from env_info import BENCH_DIR, WORK_DIR, require_files
from measure import Measured, deepmine_cli, process, run_measured
from targets import judge

NAME = "movielens"
TITLE = "MovieLens-100k: ratings u1..u5 (5-fold RMSE); implicit leave-last-out (HR@10 / NDCG@10, 99 negatives)"
RMSE_MAX, HR_MIN = 0.915, 0.65
FOLDER = "movielens-100k"
PEERS = BENCH_DIR / "rec_peers.py"
FOLDS = range(1, 6)


def leave_last_out(source: Path, work: Path) -> tuple[Path, Path, int, int]:
    """Write train/test files: each user's latest line (ties: the later line) is the test line."""
    rows = [line.split("\t") for line in source.read_text().splitlines() if line.strip()]
    latest: dict[str, tuple[int, int]] = {}
    for index, row in enumerate(rows):
        key = (int(row[3]), index)
        if row[0] not in latest or key > latest[row[0]]:
            latest[row[0]] = key
    test_rows = {index for _, index in latest.values()}
    work.mkdir(parents=True, exist_ok=True)
    train, test = work / "loo_train.tsv", work / "loo_test.tsv"
    train.write_text("".join("\t".join(r) + "\n" for i, r in enumerate(rows) if i not in test_rows))
    test.write_text("".join("\t".join(rows[i]) + "\n" for i in sorted(test_rows)))
    return train, test, len(rows) - len(test_rows), len(test_rows)


def deepmine_run(label: str, train: Path, test: Path, artifact: Path, extra: list[str]) -> dict[str, Any]:
    cli = deepmine_cli()
    fit = run_measured([*cli, "recommend", str(train), "--out", str(artifact), "--json", *extra])
    fitted = fit.json()
    evaluate = run_measured([*cli, "evaluate", str(artifact), str(test), "--json"])
    return {"label": label, "fit": fit, "fitted": fitted, "evaluate": evaluate, "scored": evaluate.json()}


def ratings_deepmine(label: str, folder: Path, work: Path, extra: list[str], progress) -> dict[str, Any]:
    folds = []
    for fold in FOLDS:
        done = deepmine_run(
            label, folder / f"u{fold}.base", folder / f"u{fold}.test", work / f"{label_slug(label)}-u{fold}", extra
        )
        folds.append(done)
        progress(f"movielens: {label}: u{fold} rmse {done['scored']['rmse']:.4f} ({done['fit'].wall_seconds:.0f} s)")
    rmses = [f["scored"]["rmse"] for f in folds]
    maes = [f["scored"]["mae"] for f in folds]
    return {
        "name": label,
        "metrics": {"rmse": statistics.mean(rmses), "mae": statistics.mean(maes)},
        "fit_seconds": round(sum(f["fit"].wall_seconds for f in folds), 3),
        "predict_seconds": round(sum(f["evaluate"].wall_seconds for f in folds), 3),
        "peak_rss_mb": max(max(f["fit"].peak_rss_mb, f["evaluate"].peak_rss_mb) for f in folds),
        "rows": {"train": 80_000, "test": 20_000},
        "details": {
            "timing": "sum over the 5 folds of the wall seconds of `deepmine recommend` / `deepmine evaluate`",
            "rmse_per_fold": rmses,
            "mae_per_fold": maes,
            "model": folds[0]["fitted"]["model"],
            "epochs_per_fold": [f["fitted"]["epochs"] for f in folds],
            "fit_seconds_reported_by_deepmine": [f["fitted"]["seconds"] for f in folds],
            "valid_rmse_per_fold": [f["fitted"]["rmse"] for f in folds],
            "processes": [process(f["fit"]) for f in folds] + [process(f["evaluate"]) for f in folds],
        },
    }


def label_slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")


def ranking_deepmine(label: str, train: Path, test: Path, work: Path, extra: list[str], rows) -> dict[str, Any]:
    done = deepmine_run(label, train, test, work / label_slug(label), ["--task", "ranking", *extra])
    scored = done["scored"]
    return {
        "name": label,
        "metrics": {k: scored[k] for k in ("hr_at_10", "ndcg_at_10", "mrr")},
        "fit_seconds": done["fit"].wall_seconds,
        "predict_seconds": done["evaluate"].wall_seconds,
        "peak_rss_mb": max(done["fit"].peak_rss_mb, done["evaluate"].peak_rss_mb),
        "rows": rows,
        "details": {
            "timing": "wall seconds of the `deepmine recommend` / `deepmine evaluate` processes",
            "model": done["fitted"]["model"],
            "epochs": done["fitted"]["epochs"],
            "valid_metrics": {k: done["fitted"].get(k) for k in ("hr_at_10", "ndcg_at_10", "mrr")},
            "test_metrics": {k: v for k, v in scored.items() if isinstance(v, float)},
            "fit_process": process(done["fit"]),
            "evaluate_process": process(done["evaluate"]),
        },
    }


def peer(args: list[str]) -> tuple[dict[str, Any], Measured]:
    measured = run_measured([sys.executable, str(PEERS), *args])
    return measured.json(), measured


def run(progress) -> dict[str, Any]:
    paths = require_files(FOLDER, ["u.data"] + [f"u{f}.{part}" for f in FOLDS for part in ("base", "test")])
    folder = paths[0].parent
    work = WORK_DIR / NAME
    train, test, n_train, n_test = leave_last_out(paths[0], work)
    loo_rows = {"train": n_train, "test": n_test}
    progress(f"movielens: leave-last-out split written to {work} ({n_train} / {n_test} rows)")
    runs: list[dict[str, Any]] = []

    # ---- ratings ------------------------------------------------------------------------------------
    runs.append(ratings_deepmine("deepmine defaults (ratings)", folder, work, [], progress))
    runs.append(ratings_deepmine("deepmine --model mf (ratings)", folder, work, ["--model", "mf"], progress))
    svd, measured = peer(["funk-svd", str(folder)])
    progress(f"movielens: Funk SVD rmse {statistics.mean(svd['folds']['rmse']):.4f}")
    runs.append(peer_ratings_run("biased MF (Funk SVD, per-rating SGD)", svd["folds"], svd, measured))
    means, measured = peer(["means", str(folder)])
    for name in ("user", "item", "global"):
        runs.append(peer_ratings_run(f"{name} mean", means["folds"][name], means, measured))

    # ---- implicit top-K ------------------------------------------------------------------------------
    for label, extra in (
        ("deepmine defaults (leave-last-out)", []),
        ("deepmine --model neumf (leave-last-out)", ["--model", "neumf"]),
        ("deepmine --model mf, BPR (leave-last-out)", ["--model", "mf"]),
    ):
        progress(f"movielens: {label} ...")
        runs.append(ranking_deepmine(label, train, test, work, extra, loo_rows))
        metrics = runs[-1]["metrics"]
        progress(f"movielens: {label}: hr@10 {metrics['hr_at_10']:.4f}, ndcg@10 {metrics['ndcg_at_10']:.4f}")
    pop, measured = peer(["popularity", str(train), str(test)])
    runs.append(
        {
            "name": "item popularity (leave-last-out)",
            "metrics": {k: pop[k] for k in ("hr_at_10", "ndcg_at_10", "mrr")},
            "fit_seconds": round(pop["fit_seconds"], 3),
            "predict_seconds": round(pop["predict_seconds"], 3),
            "peak_rss_mb": measured.peak_rss_mb,
            "rows": loo_rows,
            "details": {"process": process(measured)},
        }
    )

    rating_default, ranking_default = runs[0], next(r for r in runs if r["name"].startswith("deepmine defaults (l"))
    return {
        "benchmark": NAME,
        "title": TITLE,
        "rows": {"train": 80_000, "test": 20_000},
        "rmse": rating_default["metrics"]["rmse"],
        "mae": rating_default["metrics"]["mae"],
        "hr_at_10": ranking_default["metrics"]["hr_at_10"],
        "ndcg_at_10": ranking_default["metrics"]["ndcg_at_10"],
        "runs": runs,
        "targets": [
            judge(rating_default["name"], "rmse", rating_default["metrics"]["rmse"], "<=", RMSE_MAX),
            judge(ranking_default["name"], "hr_at_10", ranking_default["metrics"]["hr_at_10"], ">=", HR_MIN),
        ],
        "notes": [
            "Ratings rows: per fold (u1..u5 each 80,000 / 20,000); metrics are the 5-fold means, times the sums.",
            "deepmine times are whole CLI processes; peer times are measured inside their processes.",
            "Leave-last-out: deepmine runs share one set of sampled negatives (same seed, same catalogue); the "
            "popularity peer draws its own from the same distribution (items the user never interacted with).",
        ],
    }


def peer_ratings_run(label: str, folds: dict[str, list[float]], result: dict, measured: Measured) -> dict[str, Any]:
    return {
        "name": label,
        "metrics": {"rmse": statistics.mean(folds["rmse"]), "mae": statistics.mean(folds["mae"])},
        "fit_seconds": round(result["fit_seconds"], 3),
        "predict_seconds": round(result["predict_seconds"], 3),
        "peak_rss_mb": measured.peak_rss_mb,
        "rows": {"train": 80_000, "test": 20_000},
        "details": {"rmse_per_fold": folds["rmse"], "mae_per_fold": folds["mae"], "process": process(measured)},
    }
