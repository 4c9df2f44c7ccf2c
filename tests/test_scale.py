"""Scale: MLflow run tracking, Optuna tuning with two workers, 2-process DDP, streaming from disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TRACKING_URI, make_table

TINY = [
    "--no-report",
    "--set",
    "trainer.epochs=3",
    "--set",
    "trainer.batch_size=34",
    "--set",
    "model.hidden=[16]",
    "--set",
    "model.ensemble=1",
    "--set",
    "trainer.threads=1",
]


def _runs(run_cli, *extra: str) -> dict[str, dict]:
    done = run_cli("runs", "--json", "--limit", "50000", *extra)
    assert done.code == 0, done.err
    payload = json.loads(done.out)
    return {run["run_id"]: run for run in payload["runs"]}


# ---- tracking -------------------------------------------------------------------------------------
def test_runs_lists_every_fit_made_through_cli_and_api(run_cli, table_csv: Path, tmp_path: Path) -> None:
    import deepmine

    before = set(_runs(run_cli))
    made = {}
    for i in range(2):
        done = run_cli("fit", table_csv, "--target", "label", "--out", tmp_path / f"cli{i}", "--json", *TINY)
        assert done.code == 0, done.err
        summary = json.loads(done.out)
        made[summary["run_id"]] = summary
    predictor = deepmine.fit(
        table_csv, target="label", trainer={"epochs": 3, "batch_size": 34}, model={"hidden": [16], "ensemble": 1}
    )
    made[predictor.training["run_id"]] = {**predictor.metrics["valid"], "artifact": None}
    untracked = run_cli("fit", table_csv, "--target", "label", "--out", tmp_path / "off", "--no-track", "--json", *TINY)
    assert untracked.code == 0 and "run_id" not in json.loads(untracked.out)

    after = _runs(run_cli)
    assert set(after) - before == set(made)  # every tracked fit, and the --no-track one not
    for run_id, summary in made.items():
        run = after[run_id]
        assert run["status"] == "FINISHED" and run["target"] == "label" and run["task"] == "binary"
        assert run["epochs"] == 3 and isinstance(run["epochs"], int)  # a count, not 3.0 in `runs --json`
        for metric in ("accuracy", "roc_auc", "log_loss"):
            assert run["metrics"][metric] == pytest.approx(summary[metric])
    cli_run = next(r for r in made if made[r]["artifact"])
    assert after[cli_run]["command"] == "fit" and Path(after[cli_run]["artifact"]).name in ("cli0", "cli1")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(TRACKING_URI)
    logged = {a.path for a in client.list_artifacts(cli_run, "artifact")}
    assert "artifact/deepmine.json" in logged
    history = client.get_metric_history(cli_run, "train_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert client.get_run(cli_run).data.params["trainer.batch_size"] == "34"

    table = run_cli("runs", "--sort", "roc_auc")
    assert table.code == 0 and cli_run[:8] in table.err
    best = run_cli(
        "runs", "--sort", "log_loss", "--limit", "2", "--json"
    )  # the best two of every run, not of the newest
    losses = sorted(r["metrics"]["log_loss"] for r in after.values() if "log_loss" in r["metrics"])
    assert [r["metrics"]["log_loss"] for r in json.loads(best.out)["runs"]] == losses[:2]
    bogus = run_cli("runs", "--sort", "rocauc")
    assert bogus.code == 2 and "no run in 'deepmine' has the metric 'rocauc'" in bogus.err and "roc_auc" in bogus.err


def test_a_broken_tracking_store_warns_and_keeps_the_artifact(run_cli, table_csv: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    uri = f"sqlite:///{blocker / 'runs' / 'mlflow.db'}"
    done = run_cli("fit", table_csv, "--target", "label", "--out", tmp_path / "m", "--tracking-uri", uri, *TINY)
    assert done.code == 0
    assert (tmp_path / "m" / "deepmine.json").exists()
    warning = [line for line in done.err.splitlines() if "run tracking" in line]
    assert len(warning) == 1 and "failed" in warning[0] and "kept" in warning[0]


def test_epoch_metrics_keep_each_ensemble_members_history_apart() -> None:
    from deepmine.tracking import epoch_metrics

    single = [{"epoch": 1, "train_loss": 0.5, "seconds": 2.0, "note": "x"}, {"epoch": 2, "train_loss": 0.25}]
    assert epoch_metrics(single) == [("train_loss", 0.5, 0), ("epoch_seconds", 2.0, 0), ("train_loss", 0.25, 1)]
    members = [[{"train_loss": 0.5}], [{"train_loss": 0.75}, {"train_loss": 0.5}]]
    assert epoch_metrics(members) == [
        ("train_loss", 0.5, 0),
        ("member2_train_loss", 0.75, 0),
        ("member2_train_loss", 0.5, 1),
    ]


# ---- tuning ---------------------------------------------------------------------------------------
def test_tune_with_two_workers_on_one_sqlite_study_loses_no_trials(run_cli, table_csv: Path, tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    out = tmp_path / "tuned"
    args = ["tune", table_csv, "--target", "label", "--trials", "4", "--workers", "2", "--storage", storage]
    args += ["--study", "two", "--out", out, "--json", "--set", "trainer.epochs=3", "--set", "trainer.threads=1"]
    args += ["--set", "model.ensemble=1", "--set", "trainer.batch_size=34", "--no-track"]
    done = run_cli(*args)
    assert done.code == 0, done.err
    result = json.loads(done.out)
    study = optuna.load_study(study_name="two", storage=storage)
    states = [t.state for t in study.trials]
    assert len(states) == 4
    assert all(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states)
    assert {t.user_attrs["worker"] for t in study.trials} == {0, 1}  # both processes ran trials
    assert result["trials"] == 4 and result["best_value"] == pytest.approx(study.best_value)

    import deepmine

    best = deepmine.load(out / "model")
    from deepmine.config import build_config

    written = build_config(out / "best.yaml")
    assert written.model.hidden == best.config.model.hidden
    assert written.optimizer.lr == pytest.approx(study.best_params["lr"])
    assert len(best.predict(table_csv)) == 240


def test_tune_checks_the_data_first_resumes_with_new_points_and_keeps_studies_apart(
    run_cli, table_csv: Path, tmp_path: Path
) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    quick = ["--storage", storage, "--study", "s", "--no-retrain", "--json", "--no-track", "--out", tmp_path / "tuned"]
    quick += ["--set", "trainer.epochs=1", "--set", "model.ensemble=1", "--set", "trainer.batch_size=34"]
    missing = run_cli("tune", table_csv, "--target", "nocol", "--trials", "1", *quick)
    assert missing.code == 1 and "target column 'nocol' is not in" in missing.err and "Traceback" not in missing.err
    assert not (tmp_path / "optuna.db").exists()  # refused before any study was made
    for total in (2, 4):  # the second run resumes the study
        done = run_cli("tune", table_csv, "--target", "label", "--trials", "2", *quick)
        assert done.code == 0, done.err
        assert json.loads(done.out)["trials"] == total
    trials = optuna.load_study(study_name="s", storage=storage).trials
    first, resumed = [t.params for t in trials[:2]], [t.params for t in trials[2:]]
    assert all(p not in first for p in resumed)  # not the first run's points again
    other = run_cli("tune", table_csv, "--target", "income", "--trials", "1", *quick)
    assert other.code == 2 and "study 's' tunes target 'label' (binary)" in other.err and "'income'" in other.err


def test_tune_names_a_bad_storage(run_cli, table_csv: Path) -> None:
    done = run_cli("tune", table_csv, "--target", "label", "--trials", "1", "--storage", "nosuchdb://x/y")
    assert done.code != 0 and "--storage 'nosuchdb://x/y'" in done.err and "Traceback" not in done.err


# ---- distributed ----------------------------------------------------------------------------------
def test_two_process_ddp_matches_single_process(run_cli, tmp_path: Path, table_csv: Path) -> None:
    """2 ranks × 17 rows per step against 1 process × 34 rows: same data order, same updates."""
    # no dropout anywhere: ranks draw their own masks, so dropout would make 2 × 17 rows differ from 1 × 34
    settings = [*TINY, "--set", "model.dropout=0", "--set", "text.dropout=0", "--no-track", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = run_cli("fit", table_csv, "--target", "label", "--out", tmp_path / "one", *settings)
    assert one.code == 0, one.err
    cmd = [sys.executable, "-m", "deepmine", "fit", str(table_csv), "--target", "label", "--devices", "2"]
    two = subprocess.run([*cmd, "--out", str(tmp_path / "two"), *settings], capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr[-2000:]
    assert len(two.stdout.strip().splitlines()) == 1  # only rank 0 prints, saves and tracks
    import deepmine

    p1, p2 = deepmine.load(tmp_path / "one"), deepmine.load(tmp_path / "two")
    proba1, proba2 = p1.predict_proba(table_csv), p2.predict_proba(table_csv)
    assert np.abs(proba1 - proba2).max() < 1e-4
    losses1 = [h["train_loss"] for h in p1.history]
    losses2 = [h["train_loss"] for h in p2.history]
    assert losses2 == pytest.approx(losses1, rel=1e-4)
    # and training did move the weights: the fitted model is not the initial one
    assert losses1[0] != pytest.approx(losses1[-1], rel=1e-3)


def test_a_failing_multi_process_fit_exits_non_zero_with_one_line(tmp_path: Path, table_csv: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "deepmine", "fit", str(table_csv), "--target", "nope", "--devices", "2"]
    failed = subprocess.run([*cmd, "--out", str(tmp_path / "m"), "--no-track"], capture_output=True, text=True, env=env)
    assert failed.returncode == 1, failed.stderr[-2000:]
    assert failed.stderr.count("error: target column 'nope'") == 1  # once, not once per worker
    assert "Traceback" not in failed.stderr and "ChildFailedError" not in failed.stderr, failed.stderr[-2000:]
    assert not (tmp_path / "m").exists()


def test_sharded_batches_split_every_global_batch() -> None:
    from deepmine.train.batches import TensorBatches
    from deepmine.train.distributed import ShardedBatches

    x = torch.arange(100).float().unsqueeze(1)
    source = TensorBatches([x], torch.arange(100), 20)
    whole = [b[1] for b in source.epoch(torch.Generator().manual_seed(3))]
    parts = [[b[1] for b in ShardedBatches(source, r, 2).epoch(torch.Generator().manual_seed(3))] for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole) == ShardedBatches(source, 0, 2).steps()
    for full, a, b in zip(whole, *parts, strict=True):
        assert torch.equal(torch.cat([a, b]), full) and len(a) == len(b) == 10


# ---- streaming ------------------------------------------------------------------------------------
@pytest.fixture
def big_parquet(tmp_path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pandas(make_table(1500, seed=1), preserve_index=False), path, row_group_size=200)
    return path


def test_streaming_batches_cover_each_training_row_once(big_parquet: Path) -> None:
    from deepmine.config import DataConfig
    from deepmine.data.schema import infer_schema
    from deepmine.data.streaming import ChunkReader, StreamingBatches
    from deepmine.features.pipeline import FeaturePipeline

    frame = pd.read_parquet(big_parquet)
    pipeline = FeaturePipeline(infer_schema(frame, "label")).fit(frame)
    skip = np.arange(0, 1500, 7)
    reader = ChunkReader(big_parquet, DataConfig(chunk_rows=256))
    source = StreamingBatches(reader, pipeline, "label", 64, 1500 - len(skip), skip)
    batches = list(source.epoch(torch.Generator().manual_seed(0)))
    assert len(batches) == source.steps()
    sizes = [len(target) for _, target in batches]
    assert sum(sizes) == source.rows and all(s == 64 for s in sizes[:-1]) and sizes[-1] > 1
    streamed = torch.cat([inputs[0] for inputs, _ in batches]).numpy()
    kept = frame.drop(index=skip)
    expected = pipeline.transform(kept).numeric
    order = np.lexsort(streamed.T)
    assert np.allclose(streamed[order], expected[np.lexsort(expected.T)])
    again = list(source.epoch(torch.Generator().manual_seed(0)))
    other = list(source.epoch(torch.Generator().manual_seed(1)))
    assert torch.equal(again[0][1], batches[0][1]) and torch.equal(again[0][0][0], batches[0][0][0])
    assert not torch.equal(other[0][0][0], batches[0][0][0])


def test_streaming_training_warns_once_per_column_about_unreadable_dates(tmp_path: Path) -> None:
    import warnings

    from deepmine.config import DataConfig
    from deepmine.data.schema import infer_schema
    from deepmine.data.streaming import ChunkReader, StreamingBatches
    from deepmine.features.datetime import UnreadableDates
    from deepmine.features.pipeline import FeaturePipeline

    frame = make_table(800, seed=2)
    pipeline = FeaturePipeline(infer_schema(frame, "label")).fit(frame)
    frame.loc[[5, 400, 790], "joined"] = ["later", "2020-13-01", "later"]  # in three chunks of 256 rows
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    source = StreamingBatches(ChunkReader(path, DataConfig(chunk_rows=256)), pipeline, "label", 64, 800, np.array([]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(2):  # the second epoch reads the same rows: it says nothing new
            list(source.epoch(torch.Generator().manual_seed(epoch)))
    dated = [str(w.message) for w in caught if issubclass(w.category, UnreadableDates)]
    assert dated == [
        f"{path}: 3 value(s) of column 'joined' could not be read as dates (for example 'later') and were treated "
        "as missing; write them as dates such as 2020-01-13, or leave them empty"
    ]


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_streaming_fit_learns_and_is_repeatable(kind: str, big_parquet: Path, tmp_path: Path) -> None:
    import deepmine

    data = big_parquet
    if kind == "csv":
        data = tmp_path / "big.csv"
        pd.read_parquet(big_parquet).to_csv(data, index=False)
    settings = {
        "data.streaming": True,
        "data.sample_rows": 600,
        "data.chunk_rows": 300,
        "trainer": {"epochs": 4, "batch_size": 64, "threads": 1},
        "model": {"hidden": [16], "ensemble": 1},
        "report": {"enabled": False},
        "tracking": {"enabled": False},
    }
    first = deepmine.fit(data, target="label", **settings)
    with pytest.warns(UserWarning, match="model.trees=on is ignored: trees are grown on all training rows in memory"):
        second = deepmine.fit(data, target="label", **{**settings, "model.trees": "on"})  # the same network
    assert "trees" not in second.model_spec
    assert first.training["streaming"]["sample_rows"] == 600
    assert first.training["valid_rows"] == 90 and first.training["rows"] == 1500 - 90
    assert first.metrics["valid"]["accuracy"] > 0.75
    assert np.array_equal(first.predict_proba(data), second.predict_proba(data))


def test_streamed_text_gets_the_ngram_network_with_tables_from_the_sample(tmp_path: Path) -> None:
    from test_text import NEGATIVE, POSITIVE, reviews

    import deepmine
    from deepmine.exceptions import ConfigError
    from deepmine.text.ngrams import lookup

    path = tmp_path / "reviews.csv"
    reviews(900, 3).to_csv(path, index=False)
    settings = {
        "data.streaming": True,
        "data.sample_rows": 400,
        "data.chunk_rows": 300,
        "trainer": {"epochs": 4, "threads": 1},
        "model": {"ensemble": 1},
        "report": {"enabled": False},
        "tracking": {"enabled": False},
    }
    predictor = deepmine.fit(path, target="sentiment", **settings)
    assert [m["text_encoder"] for m in predictor.model_spec["members"]] == ["ngram"]
    assert predictor.metrics["valid"]["accuracy"] > 0.9 and predictor.training["rows"] == 900 - 60
    encoder = predictor.model.texts[0]  # one member: the model is the network itself
    vocabulary = predictor.pipeline.text["review"].vocabulary
    assert len(encoder.table) > 50  # the n-gram table was fitted on the sample, not left empty
    positive = predictor.schema.classes.index("pos")
    for words, sign in ((POSITIVE, 1), (NEGATIVE, -1)):  # its Naive-Bayes ratios point to each word's class
        rows = lookup(encoder.table, torch.tensor([vocabulary.id(w) for w in words]))
        assert (rows > 0).all() and (sign * encoder.ratios.weight[rows, positive] > 0).all()
    with pytest.raises(ConfigError, match=r"\['nbsvm'\] are solved on all training rows in memory"):
        deepmine.fit(path, target="sentiment", **settings, **{"text.encoder": "ngram+nbsvm"})


def test_streaming_needs_a_file() -> None:
    import deepmine
    from deepmine.exceptions import ConfigError

    with pytest.raises(ConfigError, match="data.streaming=true needs a Parquet or CSV/TSV file"):
        deepmine.fit(make_table(50), target="label", **{"data.streaming": True, "tracking.enabled": False})


def test_streaming_fits_multilabel_and_binary_thresholds_like_in_memory(tmp_path: Path) -> None:
    from test_multilabel import threshold_table

    import deepmine

    settings = {
        "data.streaming": True,
        "data.sample_rows": 300,
        "data.chunk_rows": 256,
        "trainer": {"epochs": 30, "batch_size": 32, "threads": 1, "threshold": "f1"},
        "model": {"hidden": [32], "ensemble": 1},
        "report": {"enabled": False},
        "tracking": {"enabled": False},
    }
    path = tmp_path / "tags.csv"
    threshold_table(n=700).to_csv(path, index=False)
    tagged = deepmine.fit(path, target="tags", **settings, **{"columns.label_sep": "|"})
    assert tagged.task == "multilabel" and tagged.schema.classes == ["hot", "wet"]
    # rows with no labels (empty values) are trained on, not dropped
    assert tagged.training["rows"] == 700 - 45 and tagged.metrics["valid"]["micro_f1"] > 0.85
    thresholds = tagged.model_spec["label_thresholds"]  # tuned on the validation rows, used by predict
    test = threshold_table(n=200, seed=7)
    proba = tagged.predict_proba(test)
    assert [("wet" in labels) for labels in tagged.predict(test)] == list(proba[:, 1] >= thresholds[1])

    binary = tmp_path / "binary.csv"
    make_table(n=700, seed=4).to_csv(binary, index=False)
    decided = deepmine.fit(binary, target="label", **settings)
    assert decided.training["threshold"]["threshold"] == decided.model_spec["decision_threshold"]
    assert "positive_share" in decided.training


class _Pixels(torch.utils.data.Dataset):
    """A file-backed store stand-in: batch i is a (2, 4, 4, 1) uint8 block filled with i."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index):
        return torch.full((len(index), 4, 4, 1), int(index[0]), dtype=torch.uint8)


def test_image_workers_fork_only_after_the_tracker_has_opened_its_store(monkeypatch, tmp_path: Path) -> None:
    import threading
    import time

    from deepmine import tracking
    from deepmine.images.dataset import ImageBatches

    opened = threading.Event()

    def slow_open(uri, experiment, *, create):
        time.sleep(0.5)
        opened.set()
        return object(), "0"

    monkeypatch.setattr(tracking, "open_store", slow_open)
    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'runs.db'}", "deepmine")
    seen_at_fork = []
    real_loader = torch.utils.data.DataLoader

    def loader(*args, **kwargs):
        seen_at_fork.append(opened.is_set())
        return real_loader(*args, **kwargs)

    monkeypatch.setattr("deepmine.images.dataset.DataLoader", loader)
    batches = ImageBatches(_Pixels(), None, None, 2, workers=1)
    blocks = list(batches._pixels([torch.tensor([0, 1]), torch.tensor([2, 3])]))
    assert seen_at_fork == [True] and tracker.client is not None  # the store was open before the fork
    assert [int(b[0, 0, 0, 0]) for b in blocks] == [0, 2]
