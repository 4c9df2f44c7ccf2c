"""adult: deepmine defaults through the real CLI (from CSV and from SQLite) vs LightGBM and sklearn's MLP.

Every contender runs as a child process of the runner, on the same train/test split, so each has its own wall
time, CPU time and peak RSS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import adult_data
from env_info import BENCH_DIR
from measure import deepmine_cli, process, run_measured
from targets import check, judge

NAME = "adult"
TITLE = "UCI Adult, binary `income`: train adult.data (32,561) / test adult.test (16,281)"
ACCURACY_MIN, ROC_AUC_MIN, FIT_SECONDS_MAX = 0.86, 0.915, 120.0
QUALITY = ("accuracy", "roc_auc")
PEER_SCRIPT = BENCH_DIR / "table_peers.py"


def run_deepmine(label: str, source: list[str], files: adult_data.AdultFiles, artifact: Path) -> dict[str, Any]:
    """``deepmine fit SOURCE --target income --out ARTIFACT --json``, then ``deepmine evaluate``."""
    cli = deepmine_cli()
    fit = run_measured([*cli, "fit", *source, "--target", adult_data.TARGET, "--out", str(artifact), "--json"])
    fitted = fit.json()
    evaluate = run_measured([*cli, "evaluate", str(artifact), str(files.test_csv), "--json"])
    scored = evaluate.json()
    return {
        "name": label,
        "metrics": {k: scored[k] for k in QUALITY},
        "fit_seconds": fit.wall_seconds,
        "predict_seconds": evaluate.wall_seconds,
        "peak_rss_mb": max(fit.peak_rss_mb, evaluate.peak_rss_mb),
        "rows": {"train": fitted["rows"] + fitted["valid_rows"], "test": scored["rows"]},
        "details": {
            "timing": "fit/predict = wall seconds of the `deepmine fit` / `deepmine evaluate` processes "
            "(start-up, imports, reading, training, saving included)",
            "fit_seconds_reported_by_deepmine": fitted["seconds"],
            "epochs": fitted["epochs"],
            "fit_rows": fitted["rows"],
            "valid_rows": fitted["valid_rows"],
            "valid_metrics": {k: fitted.get(k) for k in QUALITY},
            "test_metrics": {k: v for k, v in scored.items() if isinstance(v, float)},
            "fit_process": process(fit),
            "evaluate_process": process(evaluate),
        },
    }


def run_peer(label: str, peer: str, files: adult_data.AdultFiles) -> dict[str, Any]:
    measured = run_measured(
        [
            sys.executable,
            str(PEER_SCRIPT),
            peer,
            str(files.train_csv),
            str(files.test_csv),
            "--target",
            adult_data.TARGET,
        ]
    )
    result = measured.json()
    return {
        "name": label,
        "metrics": {k: result[k] for k in QUALITY},
        "fit_seconds": result["fit_seconds"],
        "predict_seconds": result["predict_seconds"],
        "peak_rss_mb": measured.peak_rss_mb,
        "rows": {"train": result["train_rows"], "test": result["test_rows"]},
        "details": {
            "timing": "fit/predict = seconds inside the peer process (preprocessing included; "
            "start-up and CSV reading not)",
            "process": process(measured),
        },
    }


def run(progress) -> dict[str, Any]:
    files = adult_data.prepare()
    work = files.train_csv.parent
    progress(f"adult: data ready in {work} ({files.train_rows} train / {files.test_rows} test rows)")
    runs: list[dict[str, Any]] = []
    contenders = [
        (
            "deepmine defaults (CSV)",
            lambda label: run_deepmine(label, [str(files.train_csv)], files, work / "model-csv"),
        ),
        (
            "deepmine defaults (SQLite)",
            lambda label: run_deepmine(label, [files.sqlite_url, "--table", files.table], files, work / "model-sqlite"),
        ),
        ("LightGBM defaults", lambda label: run_peer(label, "lightgbm", files)),
        ("sklearn MLP(64,64)", lambda label: run_peer(label, "sklearn-mlp", files)),
    ]
    for label, contend in contenders:
        progress(f"adult: {label} ...")
        runs.append(contend(label))
        done = runs[-1]
        progress(
            f"adult: {label}: accuracy {done['metrics']['accuracy']:.4f}, roc_auc "
            f"{done['metrics']['roc_auc']:.4f}, fit {done['fit_seconds']:.1f} s"
        )
    csv_run, sql_run = runs[0], runs[1]
    gap = max(
        abs(csv_run["details"]["test_metrics"][k] - sql_run["details"]["test_metrics"][k])
        for k in csv_run["details"]["test_metrics"]
    )
    label = csv_run["name"]
    return {
        "benchmark": NAME,
        "title": TITLE,
        "rows": {"train": files.train_rows, "test": files.test_rows},
        "runs": runs,
        "targets": [
            judge(label, "accuracy", csv_run["metrics"]["accuracy"], ">=", ACCURACY_MIN),
            judge(label, "roc_auc", csv_run["metrics"]["roc_auc"], ">=", ROC_AUC_MIN),
            judge(label, "fit", csv_run["fit_seconds"], "<=", FIT_SECONDS_MAX, " s"),
        ],
        "sqlite_vs_csv_largest_metric_gap": gap,
        "checks": [check(sql_run["name"], "same test metrics as from CSV", gap <= 1e-9)],
        "notes": [
            "deepmine times are whole CLI processes; peer times are measured inside their processes.",
            "Peak RSS is per child process (os.wait4); deepmine's is the larger of fit and evaluate.",
        ],
    }
