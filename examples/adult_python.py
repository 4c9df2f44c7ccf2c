"""Fit, evaluate and save a model on the Adult census table with the Python API.

Run: python examples/adult_python.py   (reads $DEEPMINE_DATA/adult, default ../shared/datasets)
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

import deepmine

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]


def read(path: Path, skip: int) -> pd.DataFrame:
    frame = pd.read_csv(path, header=None, names=COLUMNS, skipinitialspace=True, skiprows=skip, na_values="?")
    frame["income"] = frame["income"].str.rstrip(".")
    return frame


if __name__ == "__main__":
    root = Path(os.environ.get("DEEPMINE_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    train, test = read(root / "adult" / "adult.data", 0), read(root / "adult" / "adult.test", 1)
    predictor = deepmine.fit(train, target="income", seed=0)
    metrics = predictor.evaluate(test)
    print({k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    predictor.save("adult-model")
