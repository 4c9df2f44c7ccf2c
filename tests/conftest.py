"""Shared fixtures: seeded RNG, small synthetic tables made in the test, an in-process CLI runner."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

torch.set_num_threads(1)

# Every fit records an MLflow run: the whole session (and the CLI subprocesses it starts) shares ONE temporary
# store, so the store's migrations run once and no test writes to ./deepmine-runs or a user's server.
TRACKING_DIR = Path(tempfile.mkdtemp(prefix="deepmine-test-runs-"))
TRACKING_URI = f"sqlite:///{TRACKING_DIR / 'mlflow.db'}"
os.environ["MLFLOW_TRACKING_URI"] = TRACKING_URI


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(TRACKING_DIR, ignore_errors=True)


DATA_ROOT = Path(os.environ.get("DEEPMINE_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
FAST = ["--set", "trainer.epochs=20", "--set", "trainer.batch_size=32", "--set", "model.hidden=[32]"]


def make_table(n: int = 240, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """A learnable table with numeric, categorical, binary, datetime, text and id columns."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    income = rng.lognormal(10, 0.5, n)
    color = rng.choice(["red", "green", "blue", "violet"], n)
    member = rng.choice(["yes", "no"], n)
    joined = pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d")
    words = np.array(["good", "bad", "fine", "great", "poor", "service", "product", "quality"])
    note = [" ".join(rng.choice(words, 6)) for _ in range(n)]
    score = (age - 50) / 15 + (color == "red") * 1.5 - (member == "no") * 1.0 + rng.normal(0, 0.5, n)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "age": age,
            "income": income,
            "color": color,
            "member": member,
            "joined": joined,
            "note": note,
        }
    )
    if task == "binary":
        frame["label"] = np.where(score > 0, "yes", "no")
    elif task == "multiclass":
        frame["label"] = pd.cut(score, [-np.inf, -0.7, 0.7, np.inf], labels=["low", "mid", "high"]).astype(str)
    else:
        frame["label"] = score * 10 + 100
    frame.loc[rng.choice(n, n // 20, replace=False), "age"] = np.nan
    return frame


@pytest.fixture
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture
def table_csv(tmp_path: Path, table: pd.DataFrame) -> Path:
    path = tmp_path / "table.csv"
    table.to_csv(path, index=False)
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Run `deepmine ARGS...` in-process; return exit code, stdout and stderr."""
    from deepmine.cli import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def recorded_run(run_id: str) -> dict:
    """The MLflow run a fit recorded in the test store: tags, metrics, params and logged artifact files."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(TRACKING_URI)
    run = client.get_run(run_id)
    files = {a.path for a in client.list_artifacts(run_id, "artifact")}
    return {"status": run.info.status, "tags": run.data.tags, "metrics": run.data.metrics, "files": files}
