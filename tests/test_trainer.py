"""Trainer behaviour: determinism, exact resume, optimizers, batch modes, penalties, callbacks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_table
from safetensors.torch import load_file

import deepmine
from deepmine.config import build_config
from deepmine.tasks.supervised import fit_table
from deepmine.train.callbacks import Callback

SMALL = {"model.hidden": [16], "trainer.batch_size": 32, "trainer.epochs": 6, "trainer.progress": False}


def _config(**extra):
    return build_config(None, {"columns.target": "label", **SMALL, **extra})


def test_same_seed_gives_identical_predictions(table):
    first = deepmine.fit(table, target="label", seed=7, **SMALL).predict_proba(table)
    second = deepmine.fit(table, target="label", seed=7, **SMALL).predict_proba(table)
    other = deepmine.fit(table, target="label", seed=8, **SMALL).predict_proba(table)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


class CrashAfter(Callback):
    """Simulates a kill right after the checkpoint of epoch ``epoch`` is written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer, epoch):
        if epoch == self.epoch + 1:
            raise KeyboardInterrupt


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_resume_after_crash_matches_uninterrupted_fit(table, tmp_path, schedule):
    settings = {"model.dropout": 0.3, "trainer.schedule": schedule, "trainer.patience": 50}
    whole = fit_table(table, _config(**settings), checkpoint_dir=tmp_path / "a")
    crashed_dir = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        fit_table(table, _config(**settings), checkpoint_dir=crashed_dir, callbacks=[CrashAfter(2)])
    assert json.loads((crashed_dir / "state.json").read_text())["epoch"] == 2
    resumed = fit_table(table, _config(**settings), checkpoint_dir=crashed_dir, resume=True)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [h["train_loss"] for h in whole.history] == [h["train_loss"] for h in resumed.history]


class SlowEpochs(Callback):
    """Makes every epoch last at least ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_epoch_end(self, trainer, epoch, logs):
        time.sleep(self.seconds)


def test_resumed_fit_records_the_time_before_the_interruption_too(table, tmp_path):
    settings = {"trainer.early_stopping": False, "model.ensemble": 1}
    crashed_dir, old_dir = tmp_path / "b", tmp_path / "old"
    with pytest.raises(KeyboardInterrupt):
        fit_table(table, _config(**settings), checkpoint_dir=crashed_dir, callbacks=[SlowEpochs(0.3), CrashAfter(2)])
    state = json.loads((crashed_dir / "state.json").read_text())
    earlier = state.pop("seconds")
    assert earlier >= 0.9  # three slow epochs before the checkpoint of epoch 2
    shutil.copytree(crashed_dir, old_dir)
    (old_dir / "state.json").write_text(json.dumps(state))  # a checkpoint of an older release: no seconds

    began = time.perf_counter()
    resumed = fit_table(table, _config(**settings), checkpoint_dir=crashed_dir, resume=True)
    resumed_part = time.perf_counter() - began
    assert resumed_part < 0.9
    assert earlier < resumed.training["seconds"] <= earlier + resumed_part

    began = time.perf_counter()
    old = fit_table(table, _config(**settings), checkpoint_dir=old_dir, resume=True)
    assert len(old.history) == 6 and old.training["seconds"] <= time.perf_counter() - began + 0.01


def test_resume_refuses_checkpoint_of_other_settings(table, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit_table(table, _config(), checkpoint_dir=tmp_path / "c", callbacks=[CrashAfter(1)])
    with pytest.raises(ValueError, match="other data or settings"):
        fit_table(table, _config(**{"optimizer.lr": 0.01}), checkpoint_dir=tmp_path / "c", resume=True)
    from deepmine.exceptions import DeepmineWarning

    with pytest.warns(DeepmineWarning, match="--resume: no checkpoint of an earlier run in .*none'; training starts"):
        fresh = fit_table(table, _config(), checkpoint_dir=tmp_path / "none", resume=True)
    assert len(fresh.history) >= 1 and fresh.history[0]["epoch"] == 1


def wait_for_checkpoint(victim: subprocess.Popen, state: Path) -> None:
    """Wait until a CLI fit has written its first checkpoint; it must still be running."""
    deadline = time.monotonic() + 120
    while not state.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the fit finished before it could be stopped; make it slower"


def test_killed_cli_fit_resumes_to_the_same_weights(tmp_path):
    data = tmp_path / "big.csv"
    make_table(n=1500).to_csv(data, index=False)
    args = [
        "fit",
        str(data),
        "--target",
        "label",
        "--set",
        "trainer.epochs=6",
        "--set",
        "trainer.batch_size=8",
        "--set",
        "model.hidden=[32]",
        "--set",
        "trainer.early_stopping=false",
        "--set",
        "model.ensemble=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "deepmine"]
    subprocess.run([*cmd, *args, "--out", str(tmp_path / "whole")], check=True, env=env, capture_output=True)
    victim = subprocess.Popen(
        [*cmd, *args, "--out", str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = tmp_path / ".killed.checkpoint" / "state.json"
    wait_for_checkpoint(victim, state)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed").exists()
    assert json.loads(state.read_text())["epoch"] < 5
    subprocess.run(
        [*cmd, *args, "--out", str(tmp_path / "killed"), "--resume"], check=True, env=env, capture_output=True
    )
    whole = load_file(str(tmp_path / "whole" / "weights.safetensors"))
    resumed = load_file(str(tmp_path / "killed" / "weights.safetensors"))
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert not (tmp_path / ".killed.checkpoint").exists()


def test_ctrl_c_on_a_cli_fit_exits_130_and_says_how_to_resume(tmp_path):
    data = tmp_path / "big.csv"
    make_table(n=1500).to_csv(data, index=False)
    args = ["fit", str(data), "--target", "label", "--out", str(tmp_path / "m"), "--no-track"]
    args += ["--set", "trainer.epochs=200", "--set", "trainer.batch_size=8", "--set", "trainer.early_stopping=false"]
    victim = subprocess.Popen(
        [sys.executable, "-m", "deepmine", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, even under a CI runner
    )
    wait_for_checkpoint(victim, tmp_path / ".m.checkpoint" / "state.json")
    victim.send_signal(signal.SIGINT)
    _, err = victim.communicate(timeout=60)
    assert victim.returncode == 130, err[-2000:]
    assert "interrupted (`deepmine fit ... --resume` continues from the last checkpoint)" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_every_optimizer_reduces_the_loss(table, optimizer):
    lr = 0.05 if optimizer in ("sgd", "momentum", "nesterov") else 0.003
    config = _config(**{"optimizer.name": optimizer, "optimizer.lr": lr, "trainer.early_stopping": False})
    history = fit_table(table, config).history
    assert history[-1]["train_loss"] < history[0]["train_loss"]


class CountSteps(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_batch_end(self, trainer, step, loss):
        self.steps += 1


@pytest.mark.parametrize(("batch_size", "steps"), [(1, 204), ("full", 1), (50, 5)])
def test_batch_size_sets_steps_per_epoch(table, batch_size, steps):
    counter = CountSteps()
    config = _config(**{"trainer.batch_size": batch_size, "trainer.epochs": 1})
    predictor = fit_table(table, config, callbacks=[counter])
    assert predictor.training["rows"] == 204
    assert counter.steps == steps


def test_l1_penalty_shrinks_weights(table):
    def mean_abs(l1):
        model = fit_table(
            table, _config(**{"optimizer.l1": l1, "trainer.early_stopping": False, "model.ensemble": 1})
        ).model
        return float(model.body[0].weight.detach().abs().mean())

    assert mean_abs(0.01) < 0.7 * mean_abs(0.0)


class StopAt(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == 1:
            trainer.stop_training = True


def test_callback_stop_flag_ends_training(table):
    predictor = fit_table(table, _config(**{"trainer.early_stopping": False}), callbacks=[StopAt()])
    assert len(predictor.history) == 2


def test_early_stopping_restores_the_best_weights(table):
    config = _config(**{"trainer.epochs": 60, "trainer.patience": 3, "optimizer.lr": 0.05})
    predictor = fit_table(table, config)
    losses = [h["valid_loss"] for h in predictor.history]
    assert len(losses) < 60
    best = int(np.argmin(losses))
    assert predictor.training["best_epoch"] == best + 1
    assert predictor.metrics["valid"]["log_loss"] == pytest.approx(losses[best], rel=1e-4)


def test_cosine_schedule_lowers_the_learning_rate(table):
    history = fit_table(table, _config(**{"trainer.schedule": "cosine", "trainer.early_stopping": False})).history
    lrs = [h["lr"] for h in history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * lrs[0]


def test_monitor_must_be_a_validation_metric(table):
    with pytest.raises(ValueError, match="trainer.monitor 'rocauc'.*did you mean 'roc_auc'"):
        fit_table(table, _config(**{"trainer.monitor": "rocauc"}))


def test_monitor_on_a_higher_is_better_metric(table):
    predictor = fit_table(table, _config(**{"trainer.monitor": "roc_auc", "trainer.epochs": 30, "trainer.patience": 3}))
    aucs = [h["valid_roc_auc"] for h in predictor.history]
    assert predictor.training["best_epoch"] == int(np.argmax(aucs)) + 1


def test_balanced_class_weights_raise_minority_recall():
    frame = make_table(n=400)
    frame["label"] = np.where(frame["age"].fillna(50) > 68, "yes", "no")  # about 1 in 5
    plain = fit_table(frame, _config(**{"trainer.epochs": 3}))
    weighted = fit_table(frame, _config(**{"trainer.epochs": 3, "trainer.class_weight": "balanced"}))
    assert weighted.metrics["valid"]["recall"] >= plain.metrics["valid"]["recall"]
    yes = (weighted.predict(frame) == "yes").mean()
    assert yes > (plain.predict(frame) == "yes").mean()


def test_early_stopping_min_delta_ignores_tiny_relative_steps():
    from types import SimpleNamespace

    from deepmine.train.callbacks import EarlyStopping

    def stopped_at(min_delta: float) -> int | None:
        stopper = EarlyStopping("valid_loss", patience=3, restore_best=False, min_delta=min_delta)
        trainer = SimpleNamespace(stop_training=False)
        for epoch in range(20):
            stopper.on_epoch_end(trainer, epoch, {"valid_loss": 0.2 - 0.0002 * epoch})  # 0.1 % better each epoch
            if trainer.stop_training:
                return epoch
        return None

    assert stopped_at(0.0) is None  # every step counts
    assert stopped_at(0.01) == 3  # 1 %: epochs 1-3 do not beat epoch 0 by enough


def test_binary_precision_recall_f1_are_the_positive_class_like_scikit_learn():
    from deepmine.evaluate.metrics import classification_metrics

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    decided = np.array([0, 0, 0, 1, 1, 1, 0, 0])  # positive class: precision 2/3, recall 2/4
    proba = np.eye(2)[decided] * 0.8 + 0.1
    got = classification_metrics(y, proba, 2)
    assert (got["precision"], got["recall"]) == pytest.approx((2 / 3, 0.5))
    assert got["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert got["recall"] != pytest.approx(got["balanced_accuracy"])  # a macro recall would equal it


def test_a_class_absent_from_the_data_does_not_count_as_zero_in_multiclass_metrics():
    from deepmine.evaluate.metrics import classification_metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)  # classes 0 and 1 only; class 2 is neither true nor predicted
    proba = np.column_stack([np.where(y == 0, 0.7, 0.2), np.where(y == 1, 0.7, 0.2), np.full(60, 0.1)])
    got = classification_metrics(y, proba, 3)
    assert got["accuracy"] == got["precision"] == got["recall"] == got["f1"] == 1.0
    assert got["roc_auc"] == 1.0 and got["average_precision"] == 1.0


def test_a_class_with_a_single_row_is_named_when_the_split_cannot_stratify():
    from deepmine.data.splits import train_valid_split
    from deepmine.exceptions import DeepmineWarning

    frame = pd.DataFrame({"x": range(40), "y": ["a", "b"] * 19 + ["a", "rare"]})
    with pytest.warns(DeepmineWarning, match=r"target 'y': class\(es\) \['rare'\] have a single row"):
        train, valid = train_valid_split(frame, "y", 0.25, 0, stratify=True)
    assert len(train) + len(valid) == 40
