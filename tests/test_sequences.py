"""Sequences and forecasting: cleaning of timed series, windows, sequence classification, forecasting,
artifacts (fresh process), seeding, and the `deepmine forecast` / `fit --task sequence` commands."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import recorded_run

from deepmine.config import build_config
from deepmine.exceptions import ColumnError, DataError, DeepmineWarning
from deepmine.sequences.cleaning import Standardizer, numeric_targets, regular_series
from deepmine.sequences.config import ForecastRunConfig, SequenceRunConfig
from deepmine.sequences.sources import from_arrays, from_long, from_wide
from deepmine.sequences.windows import window_starts
from deepmine.tasks.forecast import ForecastPredictor, fit_forecast
from deepmine.tasks.sequence import SequencePredictor, fit_sequences


def hourly(n: int, start: str = "2024-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="h")


def seasonal_frame(n: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "when": hourly(n).strftime("%Y-%m-%d %H:%M:%S"),
            "load": 10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.2, n),
            "temp": 5 + 2 * np.cos(2 * np.pi * t / 24) + rng.normal(0, 0.2, n),
        }
    )


def forecast_config(**extra) -> ForecastRunConfig:
    settings = {"time": "when", "horizon": 24, "lookback": 48, "model.name": "dlinear", "trainer.epochs": 4}
    return build_config(None, {**settings, **extra}, schema=ForecastRunConfig, aliases={})


def small_sequence_config(**extra) -> SequenceRunConfig:
    settings = {
        "model.name": "resnet",
        "model.members": 1,
        "model.filters": 8,
        "model.depth": 2,
        "trainer.epochs": 12,
        "seed": 3,
    }
    return build_config(None, {**settings, **extra}, schema=SequenceRunConfig, aliases={})


def separable(n: int, steps: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 'up': a rising ramp then a bump early; class 'down': a falling ramp and a late bump; noisy."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, "up", "down")
    t = np.linspace(0, 1, steps)
    x = np.where((y == "up")[:, None], np.sin(2 * np.pi * t * 2), np.sign(np.sin(2 * np.pi * t * 2)))
    return x + rng.normal(0, 0.3, (n, steps)), y


# ---- cleaning: one test each ---------------------------------------------------------------------------
def test_irregular_timestamps_are_resampled_to_the_median_step_by_time_interpolation():
    stamps = pd.to_datetime(
        [
            "2024-01-01 00:00",
            "2024-01-01 01:00",
            "2024-01-01 02:30",
            "2024-01-01 03:00",
            "2024-01-01 04:00",
            "2024-01-01 05:00",
        ]
    )
    value = (stamps - stamps[0]).total_seconds() / 3600 * 2.0  # linear in time: 2 per hour
    frame = pd.DataFrame({"t": stamps.astype(str), "v": value})
    regular, report = regular_series(frame, "t", ["v"], "irregular.csv")
    assert report["freq"] == "h"
    assert list(regular.index) == list(pd.date_range("2024-01-01", periods=6, freq="h"))
    np.testing.assert_allclose(regular["v"].to_numpy(), [0, 2, 4, 6, 8, 10])  # 02:00 interpolated in time


def test_gaps_are_filled_and_counted():
    index = hourly(10).delete([3, 4, 5])
    frame = pd.DataFrame({"t": index, "v": np.arange(10.0)[[0, 1, 2, 6, 7, 8, 9]]})
    regular, report = regular_series(frame, "t", ["v"], "gaps.csv")
    assert len(regular) == 10 and report["filled"] == 3
    np.testing.assert_allclose(regular["v"].to_numpy(), np.arange(10.0))


def test_day_first_dates_and_unix_seconds_are_read_as_the_times_they_are():
    index = hourly(400, start="2016-07-01")
    expected = pd.DatetimeIndex(index)
    day_first = pd.DataFrame({"t": index.strftime("%d/%m/%Y %H:%M"), "v": np.arange(400.0)})  # 01/07 is 1 July
    regular, report = regular_series(day_first, "t", ["v"], "dayfirst.csv")
    assert list(regular.index) == list(expected) and report["filled"] == 0
    for scale in (1, 1000):  # seconds and milliseconds since 1970
        seconds = (index - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
        epoch = pd.DataFrame({"t": np.asarray(seconds, dtype="int64") * scale, "v": np.arange(400.0)})
        regular, report = regular_series(epoch, "t", ["v"], "epoch.csv")
        assert list(regular.index) == list(expected) and report["freq"] == "h"


def test_unreadable_times_and_gaps_warn_and_a_stray_word_in_a_target_is_named():
    frame = pd.DataFrame({"t": hourly(50).astype(str), "v": np.arange(50.0)})
    frame.loc[7, "t"] = "not a date"
    gappy = frame.drop(index=range(20, 30))
    with pytest.warns(DeepmineWarning) as caught:
        regular, report = regular_series(gappy, "t", ["v"], "s.csv")
    messages = [str(w.message) for w in caught]
    assert any(
        "dropped 1 row(s) whose 't' is blank or not a timestamp (first: row 8, 'not a date')" in m for m in messages
    )
    assert any("11 of 50 time steps (every h) have no row" in m and "longest gap is 10 step(s)" in m for m in messages)
    np.testing.assert_allclose(regular["v"].to_numpy(), np.arange(50.0))
    words = pd.DataFrame({"t": hourly(50).astype(str), "v": [str(float(i)) for i in range(50)]})
    words.loc[12, "v"] = "n/a?"
    for targets in ([], ["v"]):  # auto-chosen targets and named ones alike
        with pytest.raises(ColumnError, match=r"column 'v' of w.csv holds numbers but row 13 holds 'n/a\?'"):
            numeric_targets(words, "t", targets, "w.csv")


def test_non_numeric_columns_left_out_of_a_forecast_are_named_in_one_warning():
    frame = pd.DataFrame({"t": hourly(5).astype(str), "v": np.arange(5.0), "site": "north", "w": np.ones(5)})
    with pytest.warns(DeepmineWarning) as caught:
        targets = numeric_targets(frame, "t", [], "f.csv")
    assert targets == ["v", "w"]
    assert [str(w.message) for w in caught] == [
        "f.csv: left out 1 non-numeric column(s) 'site': forecasting reads numeric series only "
        "(name the series with --target to choose them yourself)"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named targets: nothing is left out unasked
        assert numeric_targets(frame, "t", ["v"], "f.csv") == ["v"]


def test_duplicated_timestamps_warn_and_keep_the_first_row():
    frame = pd.DataFrame({"t": list(hourly(5)) + [hourly(5)[2]], "v": [0.0, 1, 2, 3, 4, 99]})
    with pytest.warns(DeepmineWarning, match=r"dup\.csv: 1 duplicated timestamps in 't'"):
        regular, report = regular_series(frame, "t", ["v"], "dup.csv")
    assert report["duplicates"] == 1
    np.testing.assert_allclose(regular["v"].to_numpy(), [0, 1, 2, 3, 4])


def test_series_shorter_than_the_lookback_is_a_clear_error():
    frame = seasonal_frame(60)
    with pytest.raises(DataError, match=r"has 60 time steps, shorter than lookback 48 \+ horizon 24"):
        fit_forecast(frame, forecast_config())


def test_new_data_too_short_for_a_saved_forecaster_asks_for_more_steps_not_other_options():
    fitted = fit_forecast(seasonal_frame(300), forecast_config(**{"trainer.epochs": 1}))
    short = seasonal_frame(40)
    with pytest.raises(DataError) as predicted:  # forecast reads the last lookback steps only
        fitted.forecast(short)
    message = str(predicted.value)
    assert "has 40 time steps, shorter than the lookback 48" in message and "needs at least 48 time steps" in message
    assert "horizon 0" not in message and "--lookback" not in message  # options of a fit, not of predict
    with pytest.raises(DataError, match=r"shorter than lookback 48 \+ horizon 24; .*needs at least 72 time steps"):
        fitted.evaluate(short)
    assert len(fitted.forecast(seasonal_frame(48))) == 24


def test_constant_series_is_forecast_as_the_constant_and_normalized_to_zeros():
    frame = seasonal_frame(400)
    frame["flat"] = 7.5
    scaler = Standardizer.fit(frame[["load", "flat"]].to_numpy())
    assert scaler.std[1] == 1.0 and np.isfinite(scaler.transform(frame[["load", "flat"]].to_numpy())).all()
    predictor = fit_forecast(frame, forecast_config(targets=["load", "flat"], **{"trainer.epochs": 2}))
    future = predictor.forecast()
    np.testing.assert_array_equal(future["flat"].to_numpy(), 7.5)  # constant in training: kept as is
    assert predictor.metrics["test"]["mse_original"] >= 0 and np.isfinite(future["load"]).all()
    x = np.vstack([np.full(20, 3.0), np.linspace(0, 1, 20)])
    values, lengths = from_arrays(x)
    from deepmine.tasks.sequence import normalize

    normalized = normalize(values, lengths, "series", None)
    assert np.all(normalized[0] == 0.0) and abs(float(normalized[1].std()) - 1.0) < 1e-5


# ---- inputs ----------------------------------------------------------------------------------------
def test_wide_rows_long_format_and_trailing_nan_lengths():
    frame = pd.DataFrame([[1, 0.1, 0.2, 0.3, 0.4], [0, 0.5, np.nan, 0.7, np.nan]])
    values, lengths, y = from_wide(frame, 0, "wide.tsv")
    assert values.shape == (2, 4, 1) and list(lengths) == [4, 3] and list(y) == [1, 0]
    assert values[1, 1, 0] == pytest.approx(0.6)  # inner gap interpolated, the trailing NaN is padding
    long = pd.DataFrame(
        {
            "id": ["b", "a", "a", "b", "a"],
            "t": [2, 2, 1, 1, 3],
            "x": [20.0, 2, 1, 10, 3],
            "label": ["B", "A", "A", "B", "A"],
        }
    )
    ids, padded, lens, labels = from_long(long, "id", "t", ["x"], "long.csv", label="label")
    assert list(ids) == ["a", "b"] and list(lens) == [3, 2] and list(labels) == ["A", "B"]
    np.testing.assert_allclose(padded[:, :, 0], [[1, 2, 3], [10, 20, 0]])
    with pytest.raises(ColumnError, match="label column 'lable' is not in wide.tsv"):
        from_wide(pd.DataFrame({"label": [1], "a": [0.0]}), "lable", "wide.tsv")


def test_test_windows_reach_back_into_validation():
    starts = window_starts(100, 150, lookback=20, horizon=10)
    assert starts[0] == 80 and starts[-1] + 20 + 10 == 150 and len(starts) == 41


# ---- models ----------------------------------------------------------------------------------------
def test_forecasting_a_seasonal_series_beats_last_value():
    frame = seasonal_frame()
    predictor = fit_forecast(frame, forecast_config())
    test = predictor.metrics["test"]
    z = Standardizer(predictor.state["mean"], predictor.state["std"]).transform(frame[["load", "temp"]].to_numpy())
    train, valid, test_rows = predictor.training["rows"].values()
    errors = []
    for start in window_starts(train + valid, train + valid + test_rows, 48, 24):
        errors.append((z[start + 48 : start + 72] - z[start + 47]) ** 2)
    last_value_mse = float(np.mean(errors))
    assert test["windows"] == len(errors)
    assert test["mse"] < 0.5 * last_value_mse


def test_sequence_classification_on_separable_series():
    x, y = separable(120)
    xt, yt = separable(60, seed=1)
    predictor = fit_sequences(x[:, :, None], y, small_sequence_config())
    assert predictor.score(xt, yt)["accuracy"] >= 0.9
    proba = predictor.predict_proba(xt)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(predictor.classes_) == ["down", "up"]


def test_lstm_masks_padding_of_variable_length_series():
    rng = np.random.default_rng(0)
    n, steps = 80, 30
    y = np.where(rng.random(n) < 0.5, "pos", "neg")
    x = np.full((n, steps), np.nan)
    for i in range(n):
        length = rng.integers(10, steps + 1)
        x[i, :length] = (1.0 if y[i] == "pos" else -1.0) * np.linspace(0, 1, length) + rng.normal(0, 0.2, length)
    config = small_sequence_config(**{"model.name": "lstm", "model.hidden": 16, "sequence.normalize": "none"})
    predictor = fit_sequences(x, y, config)
    assert predictor.score(x, y)["accuracy"] >= 0.9
    padded_more = np.concatenate([x, np.full((n, 5), np.nan)], axis=1)  # extra padding must not change outputs
    np.testing.assert_allclose(predictor.predict_proba(padded_more), predictor.predict_proba(x), atol=1e-5)


def test_same_seed_same_predictions_and_another_seed_differs():
    x, y = separable(60)
    first = fit_sequences(x, y, small_sequence_config(**{"trainer.epochs": 3})).predict_proba(x)
    again = fit_sequences(x, y, small_sequence_config(**{"trainer.epochs": 3})).predict_proba(x)
    other = fit_sequences(x, y, small_sequence_config(**{"trainer.epochs": 3, "seed": 4})).predict_proba(x)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    frame = seasonal_frame(500)
    a = fit_forecast(frame, forecast_config(**{"trainer.epochs": 2})).forecast()
    b = fit_forecast(frame, forecast_config(**{"trainer.epochs": 2})).forecast()
    pd.testing.assert_frame_equal(a, b)


# ---- artifacts in a fresh process ---------------------------------------------------------------------
def fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sequence_and_forecast_artifacts_round_trip_in_a_fresh_process(tmp_path: Path):
    x, y = separable(60)
    predictor = fit_sequences(x, y, small_sequence_config(**{"trainer.epochs": 3}))
    predictor.save(tmp_path / "seq")
    np.save(tmp_path / "x.npy", x)
    out = fresh(
        "import json, numpy as np, deepmine;"
        f"p = deepmine.load({str(tmp_path / 'seq')!r});"
        f"print(json.dumps(p.predict_proba(np.load({str(tmp_path / 'x.npy')!r})).tolist()))"
    )
    np.testing.assert_allclose(np.asarray(json.loads(out)), predictor.predict_proba(x), atol=1e-6)

    frame = seasonal_frame(400)
    forecaster = fit_forecast(frame, forecast_config(**{"trainer.epochs": 2, "quantiles": [0.1, 0.9]}))
    forecaster.save(tmp_path / "fc")
    out = fresh(f"import deepmine; print(deepmine.load({str(tmp_path / 'fc')!r}).forecast().to_json())")
    expected = forecaster.forecast()
    loaded = pd.read_json(__import__("io").StringIO(out))
    np.testing.assert_allclose(loaded["load"].to_numpy(), expected["load"].to_numpy(), rtol=1e-6)
    assert (expected["load_q0.1"] <= expected["load_q0.9"]).all()
    assert isinstance(ForecastPredictor.load(tmp_path / "fc"), ForecastPredictor)
    assert isinstance(SequencePredictor.load(tmp_path / "seq"), SequencePredictor)


# ---- CLI ---------------------------------------------------------------------------------------------
def test_forecast_command_json_outputs_and_bad_time_column(run_cli, tmp_path: Path):
    path = tmp_path / "series.csv"
    seasonal_frame(500).to_csv(path, index=False)
    out = tmp_path / "fc"
    result = run_cli(
        "forecast",
        path,
        "--time",
        "when",
        "--horizon",
        "12",
        "--lookback",
        "24",
        "--model",
        "dlinear",
        "--split",
        "300,100,100",
        "--quantiles",
        "0.1,0.9",
        "--set",
        "trainer.epochs=2",
        "--out",
        out,
        "--json",
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert {"mse", "mae", "mse_original", "mae_original"} <= set(summary)
    assert summary["rows"] == {"train": 300, "valid": 100, "test": 100}
    run = recorded_run(summary["run_id"])  # forecasts are tracked like table fits, test figures included
    assert run["status"] == "FINISHED" and run["tags"]["deepmine.task"] == "forecast"
    assert run["metrics"]["test_mse"] == pytest.approx(summary["mse"]) and run["metrics"]["fit_rows_train"] == 300
    assert run["metrics"]["fit_epochs"] == max(summary["epochs"].values()) and "artifact/deepmine.json" in run["files"]
    future = pd.read_csv(out / "forecast.csv")
    assert len(future) == 12 and future["when"].iloc[0] == "2024-01-21 20:00:00" and "temp_q0.9" in future
    assert (out / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    tail = tmp_path / "tail.csv"  # the test part with the lookback before it: the fit's own test windows
    seasonal_frame(500).iloc[400 - 24 :].to_csv(tail, index=False)
    scored = run_cli("evaluate", out, tail, "--json")
    assert scored.code == 0, scored.err
    again = json.loads(scored.out)
    assert again["windows"] == 124 - 24 - 12 + 1 and again["mse"] == pytest.approx(summary["mse"], rel=1e-5)
    head = tmp_path / "head.csv"
    seasonal_frame(500).iloc[:300].to_csv(head, index=False)
    predicted = run_cli("predict", out, head)  # forecasts the 12 steps after the new data's end
    assert predicted.code == 0, predicted.err
    steps = pd.read_csv(io.StringIO(predicted.out))
    assert len(steps) == 12 and steps["when"].iloc[0] == "2024-01-13 12:00:00" and {"load", "temp"} <= set(steps)
    bad = run_cli("forecast", path, "--time", "wen", "--horizon", "12")
    assert bad.code == 1 and "column 'wen' is not in" in bad.err and "did you mean 'when'" in bad.err


def test_fit_task_sequence_then_evaluate_on_wide_rows(run_cli, tmp_path: Path):
    x, y = separable(80)
    xt, yt = separable(40, seed=2)
    labels = {"up": 1, "down": -1}
    for name, xs, ys in (("train.tsv", x, y), ("test.tsv", xt, yt)):
        rows = np.column_stack([[labels[v] for v in ys], xs])
        np.savetxt(tmp_path / name, rows, delimiter="\t", fmt="%.6f")
    fitted = run_cli(
        "fit",
        tmp_path / "train.tsv",
        "--task",
        "sequence",
        "--out",
        tmp_path / "m",
        "--json",
        "--set",
        "model.name=resnet",
        "--set",
        "model.members=1",
        "--set",
        "model.filters=8",
        "--set",
        "trainer.epochs=10",
    )
    assert fitted.code == 0, fitted.err
    summary = json.loads(fitted.out)
    assert summary["steps"] == 40
    run = recorded_run(summary["run_id"])  # sequence fits are tracked like table fits
    assert run["status"] == "FINISHED" and run["tags"]["deepmine.task"] == "classification"
    assert run["metrics"]["fit_rows"] == 80 and run["metrics"]["fit_epochs"] == max(summary["epochs"])
    assert "artifact/deepmine.json" in run["files"]
    scored = run_cli("evaluate", tmp_path / "m", tmp_path / "test.tsv", "--json")
    assert scored.code == 0, scored.err
    metrics = json.loads(scored.out)
    assert metrics["accuracy"] >= 0.9 and {"roc_auc", "log_loss", "precision", "recall"} <= set(metrics)
    # series of another length keep their label column: it is not read as a first step
    table = np.loadtxt(tmp_path / "test.tsv", delimiter="\t")
    np.savetxt(tmp_path / "short.tsv", table[:, :31], delimiter="\t", fmt="%.6f")
    np.savetxt(tmp_path / "short_unlabelled.tsv", table[:, 1:31], delimiter="\t", fmt="%.6f")
    with_label = run_cli("predict", tmp_path / "m", tmp_path / "short.tsv", "-o", tmp_path / "a.csv")
    assert with_label.code == 0 and "series of 30 steps; the model was trained on 40" in with_label.err
    assert run_cli("predict", tmp_path / "m", tmp_path / "short_unlabelled.tsv", "-o", tmp_path / "b.csv").code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))
    unlabelled = run_cli("evaluate", tmp_path / "m", tmp_path / "short_unlabelled.tsv")
    assert unlabelled.code == 1 and "holds no training class" in unlabelled.err, unlabelled.err


def test_sequence_classifier_is_a_scikit_learn_estimator():
    from sklearn.base import clone

    from deepmine import SequenceClassifier
    from deepmine.exceptions import NotFittedError

    estimator = SequenceClassifier("lstm", epochs=2, model__hidden=8)
    assert clone(estimator).get_params()["model__hidden"] == 8
    with pytest.raises(NotFittedError, match="not fitted"):
        estimator.predict(np.zeros((2, 5)))
    x, y = separable(40, steps=12)
    fitted = estimator.fit(x.reshape(40, 6, 2), y)  # (n, steps, channels)
    assert fitted.predict(x.reshape(40, 6, 2)).shape == (40,)
    codes = np.where(y == "up", 10, 2)  # integer labels come back as integers, in numeric order
    numbers = clone(estimator).fit(x, codes)
    assert numbers.classes_.tolist() == [2, 10] and numbers.predict(x).dtype.kind == "i"
    assert 0 <= numbers.score(x, codes) <= 1  # scikit-learn's scorer compares them with y


def test_a_text_step_in_wide_rows_is_named_by_row_and_value():
    from deepmine.exceptions import ColumnError
    from deepmine.sequences.sources import from_wide

    frame = pd.DataFrame({"label": [0, 1, 0], "s1": [0.1, 0.2, 0.3], "s2": ["1.5", "2.5", "abc"]})
    with pytest.raises(ColumnError, match=r"column 's2' of rows.csv is not numeric: row 3 holds 'abc'"):
        from_wide(frame, "label", "rows.csv")
    empty = pd.DataFrame({"label": [0, 1, 0], "s1": [0.1, np.nan, 0.3], "s2": [0.2, np.nan, 0.4]})
    with pytest.raises(DataError, match=r"row 2 of rows.csv has no values"):  # row numbers as in the message above
        from_wide(empty, "label", "rows.csv")


def test_missing_sequence_labels_are_located():
    from deepmine.tasks.sequence import fit_sequences

    x, _ = separable(8)
    y = np.array([1.0, 0.0, np.nan, 1.0, 0.0, np.nan, 1.0, 0.0])
    with pytest.raises(DataError, match=r"2 label\(s\) are missing, in row\(s\) \[3, 6\]"):
        fit_sequences(x, y, where="rows.csv")


def test_missing_text_labels_are_located_not_learnt_as_a_class_nan():
    x, _ = separable(8)
    y = np.array(["up", "down", np.nan, "up", "down", " ", "up", None], dtype=object)  # a CSV's blank cells
    with pytest.raises(DataError, match=r"3 label\(s\) are missing, in row\(s\) \[3, 6, 8\]"):
        fit_sequences(x, y, where="rows.csv")
    x, y = separable(40, steps=12)
    fitted = fit_sequences(x, y, small_sequence_config(**{"trainer.epochs": 1}))
    y = y.astype(object)
    y[1] = np.nan
    with pytest.raises(DataError, match=r"test.csv: 1 label\(s\) are missing, in row\(s\) \[2\]"):
        fitted.score(x, y, where="test.csv")  # not "labels ['nan'] were not seen in training"


def test_a_label_column_that_is_not_first_is_pointed_out(run_cli, tmp_path: Path):
    x, y = separable(30, steps=12)
    frame = pd.DataFrame(x, columns=[f"s{i}" for i in range(12)]).assign(label=y)
    frame.to_csv(tmp_path / "last.csv", index=False)
    args = ("fit", tmp_path / "last.csv", "--task", "sequence", "--out", tmp_path / "m", "--no-track")
    fitted = run_cli(*args, "--set", "trainer.epochs=1", "--set", "model.members=1")
    assert "label is read from the first column 's0'" in fitted.err and "pass --target label" in fitted.err
