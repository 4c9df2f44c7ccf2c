"""Two tracked fits with different learning rates, then the runs compared from MLflow's store.

Run: python examples/tracked_runs.py   (writes ./deepmine-runs; browse it with
`mlflow ui --backend-store-uri sqlite:///deepmine-runs/mlflow.db`)
"""

from __future__ import annotations

from sklearn.datasets import load_breast_cancer

import deepmine
from deepmine.tracking import list_runs

frame = load_breast_cancer(as_frame=True).frame
for lr in (1e-3, 3e-3):
    predictor = deepmine.fit(
        frame, target="target", optimizer={"lr": lr}, trainer={"epochs": 15}, report={"enabled": False}
    )
    print(f"lr {lr}: run {predictor.training['run_id']}, roc_auc {predictor.metrics['valid']['roc_auc']:.4f}")

for run in list_runs(limit=5)["runs"]:
    print(run["run_id"][:8], run["params"].get("optimizer.lr"), {k: round(v, 4) for k, v in run["metrics"].items()})
