"""`deepmine demo`: profile → fit → evaluate → predict on a real table bundled with scikit-learn.

The Wisconsin breast-cancer table (569 tumours, 30 measurements, malignant/benign) ships inside
scikit-learn, so the demo needs no network and no ../shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

TARGET = "diagnosis"


def write_demo_tables(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write train.csv (80 %) and test.csv (20 %, stratified) and return their paths."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns={"target": TARGET})
    frame[TARGET] = frame[TARGET].map(dict(enumerate(bunch.target_names)))
    frame.insert(0, "patient_id", [f"P{i:04d}" for i in range(len(frame))])
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame[TARGET])
    folder.mkdir(parents=True, exist_ok=True)
    train_path, test_path = folder / "train.csv", folder / "test.csv"
    train.to_csv(train_path, index=False)
    test.to_csv(test_path, index=False)
    return train_path, test_path


def run_demo(out: Path, console: Console | None = None) -> dict[str, Any]:
    """Run the whole workflow; print each step; return the test metrics and paths."""
    from deepmine.artifact import load_predictor
    from deepmine.config import build_config
    from deepmine.profile import profile_table
    from deepmine.tasks.supervised import fit_table

    console = console or Console(stderr=True)
    out = Path(out)
    train_path, test_path = write_demo_tables(out / "data")
    console.rule("[bold]1. profile")
    profile = profile_table(train_path, TARGET)
    roles: dict[str, int] = {}
    for col in profile["columns"]:
        roles[col["role"]] = roles.get(col["role"], 0) + 1
    console.print(f"{train_path}: {profile['rows']} rows; roles {roles}; target balance {profile['target']['balance']}")
    console.rule("[bold]2. fit")
    config = build_config(None, {"columns.target": TARGET, "columns.id": "patient_id", "trainer.checkpoint": False})
    predictor = fit_table(train_path, config)
    artifact = predictor.save(out / "model", report=True)
    console.print(
        f"trained {predictor.training['epochs']} epochs in {predictor.training['seconds']:.1f} s "
        f"→ artifact [bold]{artifact}[/] (report: {artifact / 'report.html'})"
    )
    console.rule("[bold]3. evaluate (held-out test rows)")
    loaded = load_predictor(artifact)
    metrics = loaded.evaluate(test_path)
    table = Table()
    table.add_column("metric")
    table.add_column("test", justify="right")
    for key in ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"):
        table.add_row(key, f"{metrics[key]:.4f}")
    console.print(table)
    console.rule("[bold]4. predict")
    predictions = loaded.predict_frame(test_path)
    pred_path = out / "predictions.csv"
    predictions.to_csv(pred_path, index=False)
    console.print(predictions.head(5).to_string(index=False))
    console.print(f"wrote {len(predictions)} predictions to [bold]{pred_path}[/]")
    return {
        "artifact": str(artifact),
        "report": str(artifact / "report.html"),
        "predictions": str(pred_path),
        **{k: v for k, v in metrics.items() if k != "confusion_matrix"},
    }


def demo_frame() -> pd.DataFrame:
    """The demo table in memory (used by examples and tests)."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame
