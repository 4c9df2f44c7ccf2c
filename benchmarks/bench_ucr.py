"""ucr: UCR series classification (ECG200, SwedishLeaf) through the real CLI (`deepmine fit --task sequence`,
`deepmine evaluate`), with the UCR train/test split as given (validation, when asked for, only from train),
against a plain PyTorch LSTM(128) classifier; every contender a child process of the runner.
"""

from __future__ import annotations

import sys
from typing import Any

from env_info import BENCH_DIR, WORK_DIR, require_files
from measure import deepmine_cli, process, run_measured
from targets import judge

NAME = "ucr"
TITLE = "UCR ECG200 (100/100) and SwedishLeaf (500/625): test accuracy, defaults vs a plain PyTorch LSTM"
SETS = {
    "ECG200": ("ucr-ecg200", 0.88, {"train": 100, "test": 100}),
    "SwedishLeaf": ("ucr-swedishleaf", 0.94, {"train": 500, "test": 625}),
}
PEERS = BENCH_DIR / "seq_peers.py"


def run(progress) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    headline: dict[str, Any] = {}
    for name, (folder, bound, rows) in SETS.items():
        train, test = require_files(folder, [f"{name}_TRAIN.tsv", f"{name}_TEST.tsv"])
        artifact = WORK_DIR / NAME / name
        fit = run_measured([*deepmine_cli(), "fit", str(train), "--task", "sequence", "--out", str(artifact), "--json"])
        fitted = fit.json()
        evaluate = run_measured([*deepmine_cli(), "evaluate", str(artifact), str(test), "--json"])
        scored = evaluate.json()
        progress(f"ucr {name}: deepmine accuracy {scored['accuracy']:.4f} (fit {fit.wall_seconds:.0f} s)")
        label = f"deepmine defaults ({name})"
        runs.append(
            {
                "name": label,
                "metrics": {"accuracy": scored["accuracy"], "f1": scored["f1"]},
                "fit_seconds": fit.wall_seconds,
                "predict_seconds": evaluate.wall_seconds,
                "peak_rss_mb": max(fit.peak_rss_mb, evaluate.peak_rss_mb),
                "rows": rows,
                "details": {
                    "timing": "wall seconds of the `deepmine fit` / `deepmine evaluate` processes",
                    "model": f"{fitted['members']} × {fitted['model']}",
                    "epochs": fitted["epochs"],
                    "balanced_accuracy": scored["balanced_accuracy"],
                    "fit_process": process(fit),
                    "evaluate_process": process(evaluate),
                },
            }
        )
        headline[f"accuracy_{name.lower()}"] = scored["accuracy"]
        targets.append(judge(label, "accuracy", scored["accuracy"], ">=", bound))
        lstm = run_measured([sys.executable, str(PEERS), "lstm-ucr", str(train), str(test)])
        peer = lstm.json()
        progress(f"ucr {name}: plain PyTorch LSTM accuracy {peer['accuracy']:.4f}")
        runs.append(
            {
                "name": f"plain PyTorch LSTM(128) ({name})",
                "metrics": {"accuracy": peer["accuracy"]},
                "fit_seconds": round(peer["fit_seconds"], 3),
                "predict_seconds": round(peer["predict_seconds"], 3),
                "peak_rss_mb": lstm.peak_rss_mb,
                "rows": rows,
                "details": {"epochs": peer["epochs"], "process": process(lstm)},
            }
        )
    return {
        "benchmark": NAME,
        "title": TITLE,
        "rows": {name: rows for name, (_, _, rows) in SETS.items()},
        **headline,
        "runs": runs,
        "targets": targets,
        "notes": [
            "ucr: published (Fawaz et al. 2019, ~1500 epochs on GPU): ResNet ECG200 ≈ 0.87–0.89, SwedishLeaf ≈ 0.96; "
            "1-NN DTW 0.77 / ≈ 0.79–0.85.",
            "ucr: the LSTM peer: Adam 1e-3, batch 16, 100 epochs, one thread, series as given (UCR z-normalized).",
        ],
    }
