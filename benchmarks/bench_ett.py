"""ett: ETTh1 multivariate forecasting (7 variables) through the real CLI (`deepmine forecast --json`), against
last-value, seasonal-naive (24 h) and a plain PyTorch LSTM, every contender a child process of the runner.

Protocol (DLinear/PatchTST): train/valid/test = first 8640 / next 2880 / next 2880 hours, standardized with
training statistics, lookback 96, horizons 96 and 336, every sliding window whose forecast lies in the test
rows (the lookback may reach back into validation); MSE and MAE over all variables on standardized values.
deepmine's defaults train DLinear and PatchTST and keep one of them or their mean by validation MSE; the
test figures of each candidate come from the same process (so "never worse than our DLinear" is checked in
the same run).
"""

from __future__ import annotations

import sys
from typing import Any

from env_info import BENCH_DIR, WORK_DIR, require_files
from measure import deepmine_cli, process, run_measured
from targets import check, judge

NAME = "ett"
TITLE = "ETTh1 forecasting, 7 variables, lookback 96, horizons 96 / 336 (test MSE / MAE, standardized)"
MSE_MAX = 0.40
PEERS = BENCH_DIR / "seq_peers.py"
ROWS = {"train": 8640, "valid": 2880, "test": 2880}


def run(progress) -> dict[str, Any]:
    (path,) = require_files("ett", ["ETTh1.csv"])
    work = WORK_DIR / NAME
    runs: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    headline: dict[str, Any] = {}
    for horizon in (96, 336):
        out = work / f"h{horizon}"
        measured = run_measured(
            [
                *deepmine_cli(),
                "forecast",
                str(path),
                "--time",
                "date",
                "--horizon",
                str(horizon),
                "--lookback",
                "96",
                "--split",
                "8640,2880,2880",
                "--out",
                str(out),
                "--json",
            ]
        )
        fitted = measured.json()
        progress(
            f"ett h{horizon}: deepmine ({fitted['model']}) mse {fitted['mse']:.4f} ({measured.wall_seconds:.0f} s)"
        )
        label = f"deepmine defaults (h{horizon})"
        runs.append(
            {
                "name": label,
                "metrics": {"mse": fitted["mse"], "mae": fitted["mae"]},
                "fit_seconds": measured.wall_seconds,
                "predict_seconds": None,
                "peak_rss_mb": measured.peak_rss_mb,
                "rows": ROWS,
                "details": {
                    "timing": "wall seconds of the whole `deepmine forecast` process (fit, test scoring, outputs)",
                    "chosen": fitted["model"],
                    "epochs": fitted["epochs"],
                    "valid_mse": fitted["valid_mse"],
                    "mse_original": fitted["mse_original"],
                    "mae_original": fitted["mae_original"],
                    "test_windows": fitted["test_windows"],
                    "process": process(measured),
                },
            }
        )
        for candidate, scores in fitted["candidates"].items():
            runs.append(
                {
                    "name": f"deepmine {candidate} (h{horizon}, same process)",
                    "metrics": {"mse": scores["mse"], "mae": scores["mae"]},
                    "fit_seconds": None,
                    "predict_seconds": None,
                    "peak_rss_mb": None,
                    "rows": ROWS,
                    "details": {"valid_mse": scores["valid_mse"]},
                }
            )
        if horizon == 96:
            headline = {"mse": fitted["mse"], "mae": fitted["mae"]}
            targets.append(judge(label, "mse", fitted["mse"], "<=", MSE_MAX))
            dlinear = fitted["candidates"]["dlinear"]["mse"]
            targets.append(check(label, "mse ≤ deepmine DLinear's in the same run", fitted["mse"] <= dlinear + 1e-12))
        naive = run_measured([sys.executable, str(PEERS), "naive", str(path), str(horizon)])
        scores = naive.json()
        for key, name in (("last_value", "last value"), ("seasonal_naive", "seasonal naive, 24 h")):
            runs.append(
                {
                    "name": f"{name} (h{horizon})",
                    "metrics": scores[key],
                    "fit_seconds": 0.0,
                    "predict_seconds": round(scores["seconds"], 3),
                    "peak_rss_mb": naive.peak_rss_mb,
                    "rows": ROWS,
                    "details": {"process": process(naive)},
                }
            )
        lstm = run_measured([sys.executable, str(PEERS), "lstm-forecast", str(path), str(horizon)])
        scores = lstm.json()
        progress(f"ett h{horizon}: plain PyTorch LSTM mse {scores['mse']:.4f}")
        runs.append(
            {
                "name": f"plain PyTorch LSTM(64) + linear head (h{horizon})",
                "metrics": {"mse": scores["mse"], "mae": scores["mae"]},
                "fit_seconds": round(scores["fit_seconds"], 3),
                "predict_seconds": round(scores["predict_seconds"], 3),
                "peak_rss_mb": lstm.peak_rss_mb,
                "rows": ROWS,
                "details": {"epochs": scores["epochs"], "valid_mse": scores["valid_mse"], "process": process(lstm)},
            }
        )
    return {
        "benchmark": NAME,
        "title": TITLE,
        "rows": ROWS,
        **headline,
        "runs": runs,
        "targets": targets,
        "notes": [
            "ett: published (lookback 96, horizon 96): DLinear ≈ 0.386, PatchTST ≈ 0.41, TimesNet ≈ 0.384.",
            "ett: the LSTM peer: Adam 1e-3, batch 32, 10 epochs, best validation epoch kept, one thread.",
        ],
    }
