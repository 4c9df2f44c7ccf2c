"""The flow the imdb and chnsenticorp benchmarks share: deepmine DEFAULTS through the real CLI (`deepmine fit
train.csv --target label`, `deepmine evaluate MODEL test.csv --json`), then TF-IDF + logistic regression and the
classic Embedding(10000,64)+LSTM(64) as plain child processes (benchmarks/text_peers.py), same split, same run."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from env_info import BENCH_DIR
from measure import deepmine_cli, process, run_measured
from targets import check, judge

PEERS = BENCH_DIR / "text_peers.py"
FIT_LIMIT = 900  # seconds: ≤ 15 min on 2 cores


def deepmine_run(train: Path, test: Path, artifact: Path, progress, name: str) -> tuple[dict[str, Any], dict]:
    fit = run_measured([*deepmine_cli(), "fit", str(train), "--target", "label", "--out", str(artifact), "--json"])
    fitted = fit.json()
    chosen = [line for line in fit.stderr.splitlines() if line.startswith("text column")]
    evaluate = run_measured([*deepmine_cli(), "evaluate", str(artifact), str(test), "--json"])
    scored = evaluate.json()
    progress(f"{name}: deepmine defaults accuracy {scored['accuracy']:.4f} (fit {fit.wall_seconds:.0f} s)")
    run = {
        "name": "deepmine defaults",
        "metrics": {"accuracy": scored["accuracy"], "f1": scored["f1"], "roc_auc": scored.get("roc_auc")},
        "fit_seconds": fit.wall_seconds,
        "predict_seconds": evaluate.wall_seconds,
        "peak_rss_mb": max(fit.peak_rss_mb, evaluate.peak_rss_mb),
        "details": {
            "timing": "wall seconds of the `deepmine fit` / `deepmine evaluate` processes (torch default threads)",
            "text_columns": chosen,
            "epochs": fitted["epochs"],
            "valid_accuracy": fitted.get("accuracy"),
            "fit_process": process(fit),
            "evaluate_process": process(evaluate),
        },
    }
    return run, scored


def peer(kind: str, train: Path, test: Path, *extra: str) -> tuple[dict[str, Any], Any]:
    measured = run_measured([sys.executable, str(PEERS), kind, str(train), str(test), *extra])
    return measured.json(), measured


def run_text(
    progress, name: str, title: str, train: Path, test: Path, artifact: Path, analyzer: str, bound: float
) -> dict[str, Any]:
    """Every contender on one train/test pair; targets: ≥ ``bound`` and above the TF-IDF peer."""
    defaults, scored = deepmine_run(train, test, artifact, progress, name)
    rows = {"train": len(pd.read_csv(train)), "test": scored["rows"]}
    defaults["rows"] = rows
    tfidf, tfidf_process = peer("tfidf", train, test, "--analyzer", analyzer)
    progress(f"{name}: TF-IDF + logistic regression accuracy {tfidf['accuracy']:.4f}")
    grams = "word 1–2-grams" if analyzer == "word" else "character 1–3-grams"
    lstm, lstm_process = peer("lstm", train, test)
    progress(f"{name}: classic Embedding+LSTM accuracy {lstm['accuracy']:.4f}")
    runs = [
        defaults,
        {
            "name": f"TF-IDF ({grams}) + logistic regression",
            "metrics": {"accuracy": tfidf["accuracy"]},
            "fit_seconds": round(tfidf["fit_seconds"], 3),
            "predict_seconds": round(tfidf["predict_seconds"], 3),
            "peak_rss_mb": tfidf_process.peak_rss_mb,
            "rows": rows,
            "details": {"features": tfidf["features"], "process": process(tfidf_process)},
        },
        {
            "name": "classic Embedding(10000,64)+LSTM(64), pad 100, plain PyTorch",
            "metrics": {"accuracy": lstm["accuracy"], "gflops": round(lstm["lstm_gflops_per_second"], 2)},
            "fit_seconds": round(lstm["fit_seconds"], 3),
            "predict_seconds": round(lstm["predict_seconds"], 3),
            "peak_rss_mb": lstm_process.peak_rss_mb,
            "rows": rows,
            "details": {"epochs": lstm["epochs"], "process": process(lstm_process)},
        },
    ]
    accuracy = scored["accuracy"]
    targets = [
        judge("deepmine defaults", "accuracy", accuracy, ">=", bound),
        check(
            "deepmine defaults", f"accuracy above TF-IDF + LR ({tfidf['accuracy']:.4f})", accuracy > tfidf["accuracy"]
        ),
        judge("deepmine defaults", "fit", defaults["fit_seconds"], "<=", FIT_LIMIT, "s"),
    ]
    return {
        "benchmark": name,
        "title": title,
        "rows": rows,
        "accuracy": accuracy,
        "tfidf_accuracy": tfidf["accuracy"],
        "lstm_accuracy": lstm["accuracy"],
        "runs": runs,
        "targets": targets,
        "notes": [
            f"{name}: load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
            f"{name}: the LSTM peer is the classic Keras recipe as a plain PyTorch loop (Adam 1e-3, batch 32, "
            "3 epochs, one thread); TF-IDF peer: sklearn TfidfVectorizer + LogisticRegression(C=4, lbfgs).",
        ],
    }
