"""The CLI's main path: fit → evaluate → predict on a CSV, JSON contract on stdout."""

from __future__ import annotations

import json

import pandas as pd
from conftest import FAST


def test_fit_evaluate_predict_roundtrip(run_cli, table_csv, tmp_path):
    out = tmp_path / "model"
    fit = run_cli("fit", table_csv, "--target", "label", "--out", out, "--json", *FAST)
    assert fit.code == 0, fit.err
    summary = json.loads(fit.out)
    assert summary["task"] == "binary" and summary["artifact"] == str(out)
    assert 0.0 <= summary["accuracy"] <= 1.0 and "roc_auc" in summary
    ev = run_cli("evaluate", out, table_csv, "--json")
    assert ev.code == 0, ev.err
    metrics = json.loads(ev.out)
    assert set(metrics) >= {
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "average_precision",
        "confusion_matrix",
    }
    assert metrics["accuracy"] > 0.7  # the label is learnable from age, color and member
    preds_path = tmp_path / "preds.csv"
    pr = run_cli("predict", out, table_csv, "-o", preds_path, "--id", "customer_id")
    assert pr.code == 0, pr.err
    preds = pd.read_csv(preds_path)
    source = pd.read_csv(table_csv)
    assert list(preds.columns) == ["customer_id", "prediction", "proba_no", "proba_yes"]
    assert preds["customer_id"].tolist() == source["customer_id"].tolist()
    assert ((preds["proba_no"] + preds["proba_yes"]).round(5) == 1).all()
