"""chinese-sentiment (alias chnsenticorp): Chinese hotel-review sentiment (ChnSentiCorp htl_all, stratified
80/20, seed 42) — deepmine defaults through the real CLI (never told the text is Chinese) against TF-IDF
character 1–3-grams + logistic regression and the classic Embedding+LSTM."""

from __future__ import annotations

from typing import Any

import pandas as pd
from env_info import WORK_DIR, require_files
from sklearn.model_selection import train_test_split
from text_bench import run_text

NAME = "chinese-sentiment"  # `run.py chnsenticorp` works too (run.ALIASES)
TITLE = "ChnSentiCorp hotel reviews (stratified 80/20, seed 42): test accuracy, defaults vs TF-IDF char 1–3-grams"
BOUND = 0.905


def run(progress) -> dict[str, Any]:
    (source,) = require_files("chnsenticorp", ["chnsenticorp_htl_all.csv"])
    folder = WORK_DIR / NAME
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(source)[["text", "label"]]
    train_frame, test_frame = train_test_split(frame, test_size=0.2, random_state=42, stratify=frame["label"])
    train, test = folder / "train.csv", folder / "test.csv"
    train_frame.to_csv(train, index=False)
    test_frame.to_csv(test, index=False)
    return run_text(progress, NAME, TITLE, train, test, folder / "model", "char", BOUND)
