"""imdb: binary sentiment on IMDB (split column: 25k train / 25k test) — deepmine defaults through the real CLI
against TF-IDF + logistic regression and the classic Embedding+LSTM (with its GFLOP/s next to the matmul peak).
"""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
from env_info import WORK_DIR, require_files
from measure import run_measured
from text_bench import PEERS, run_text

NAME = "imdb"
TITLE = "IMDB sentiment (25k/25k): test accuracy, defaults vs TF-IDF+LR and the classic Embedding+LSTM"
BOUND = 0.905


def run(progress) -> dict[str, Any]:
    (source,) = require_files("imdb", ["imdb.csv.gz"])
    folder = WORK_DIR / NAME
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(source)
    train, test = folder / "train.csv", folder / "test.csv"
    for split, path in (("train", train), ("test", test)):
        frame.loc[frame["split"] == split, ["text", "label"]].to_csv(path, index=False)
    result = run_text(progress, NAME, TITLE, train, test, folder / "model", "word", BOUND)
    peak = run_measured([sys.executable, str(PEERS), "peak"]).json()["matmul_peak_gflops"]
    lstm = result["runs"][2]
    lstm["details"]["matmul_peak_gflops"] = round(peak, 1)
    lstm["details"]["share_of_matmul_peak"] = round(lstm["metrics"]["gflops"] / peak, 3)
    progress(f"{NAME}: LSTM {lstm['metrics']['gflops']} GFLOP/s; fp32 matmul peak {peak:.1f} GFLOP/s")
    return result
