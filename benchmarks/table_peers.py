"""The peers for a binary table, run as a child process so each gets its own wall time and peak RSS.

    python benchmarks/table_peers.py {lightgbm,sklearn-mlp} TRAIN.csv TEST.csv --target COL

Prints one JSON object: accuracy, roc_auc, fit and predict seconds (preprocessing included, CSV reading not).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

PEERS = ("lightgbm", "sklearn-mlp")


def split_xy(frame: pd.DataFrame, target: str, classes: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    y = frame[target].map({c: i for i, c in enumerate(classes)})
    if y.isna().any():
        raise ValueError(f"labels outside {classes}: {sorted(frame[target][y.isna()].unique())}")
    return frame.drop(columns=[target]), y.to_numpy(dtype="int64")


def string_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]


def lightgbm_defaults(x_train: pd.DataFrame, y_train: np.ndarray, x_test: pd.DataFrame):
    """LGBMClassifier() with the pandas category dtype for string columns (test uses the train categories)."""
    from lightgbm import LGBMClassifier

    started = time.perf_counter()
    cats = string_columns(x_train)
    x_train = x_train.copy()
    dtypes = {}
    for col in cats:
        x_train[col] = x_train[col].astype("category")
        dtypes[col] = x_train[col].dtype
    model = LGBMClassifier(verbose=-1).fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    x_test = x_test.astype(dtypes)
    proba = model.predict_proba(x_test)[:, 1]
    return proba, fit_seconds, time.perf_counter() - started


def sklearn_mlp(x_train: pd.DataFrame, y_train: np.ndarray, x_test: pd.DataFrame):
    """MLPClassifier((64, 64), early_stopping=True, random_state=0) on one-hot + standardized features."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = string_columns(x_train)
    nums = [c for c in x_train.columns if c not in cats]
    started = time.perf_counter()
    features = ColumnTransformer(
        [
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                cats,
            ),
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
        ]
    )
    model = make_pipeline(features, MLPClassifier(hidden_layer_sizes=(64, 64), early_stopping=True, random_state=0))
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    proba = model.predict_proba(x_test)[:, 1]
    return proba, fit_seconds, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=PEERS)
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--target", required=True)
    args = parser.parse_args(argv)
    read = {"na_values": [""], "keep_default_na": False}
    train, test = pd.read_csv(args.train, **read), pd.read_csv(args.test, **read)
    classes = sorted(train[args.target].unique())
    if len(classes) != 2:
        raise SystemExit(f"error: '{args.target}' has {len(classes)} classes; these peers are for binary tables")
    x_train, y_train = split_xy(train, args.target, classes)
    x_test, y_test = split_xy(test, args.target, classes)
    run = lightgbm_defaults if args.peer == "lightgbm" else sklearn_mlp
    proba, fit_seconds, predict_seconds = run(x_train, y_train, x_test)
    result = {
        "peer": args.peer,
        "positive_class": classes[1],
        "accuracy": float(accuracy_score(y_test, (proba >= 0.5).astype(int))),
        "roc_auc": float(roc_auc_score(y_test, proba)),
        "fit_seconds": round(fit_seconds, 3),
        "predict_seconds": round(predict_seconds, 3),
        "train_rows": len(train),
        "test_rows": len(test),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
