"""Anomaly detection, deep clustering and rare-event classification (issue 5)."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from deepmine.exceptions import ConfigError, DataError, DeepmineWarning
from deepmine.unsupervised.anomalies import detect_anomalies
from deepmine.unsupervised.cluster import check_k, cluster_accuracy, cluster_table

FAST_DETECTOR = {"members": 2, "threads": 1}


def planted(n: int = 300, outliers: int = 12, seed: int = 0, column: str | None = None) -> pd.DataFrame:
    """Correlated normal rows; the last ``outliers`` rows break the correlation (or shift ``column``)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 2))
    x = np.column_stack([base[:, 0], base[:, 1], base[:, 0] + 0.1 * rng.normal(size=n), base[:, 1] * 2, base.sum(1)])
    frame = pd.DataFrame(x, columns=["c0", "c1", "c2", "c3", "c4"])
    frame["outlier"] = 0
    rows = np.arange(n - outliers, n)
    if column is None:  # each planted row: two columns pushed far out, one correlation broken
        for row in rows:
            pushed = rng.choice(["c0", "c1", "c3", "c4"], 2, replace=False)
            frame.loc[row, pushed] += rng.choice([-1, 1], 2) * rng.uniform(4, 6, 2) * frame[pushed].std().to_numpy()
        frame.loc[rows, "c2"] = -frame.loc[rows, "c0"]
    else:
        frame.loc[rows, column] += 8.0
    frame.loc[rows, "outlier"] = 1
    return frame


def blobs(n: int = 240, centers: int = 3, seed: int = 0) -> pd.DataFrame:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=n, centers=centers, n_features=4, cluster_std=0.6, random_state=seed)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["group"] = np.array(["x", "y", "z", "w", "v"])[y]
    return frame


# ---- anomalies ------------------------------------------------------------------------------------
def test_default_detector_ranks_planted_outliers_on_top():
    frame = planted()
    result = detect_anomalies(frame, label="outlier", seed=0, detector_options=FAST_DETECTOR)
    assert result.metrics["roc_auc"] >= 0.95
    assert result.metrics["precision_at_k"] >= 0.6  # most of the 12 planted rows are the top 12 (chance: 0.04)
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(frame["outlier"], result.scores))


def test_contributing_column_is_the_perturbed_one():
    frame = planted(column="c3", outliers=6)
    result = detect_anomalies(frame, detector="autoencoder", label="outlier", seed=0, detector_options={"threads": 1})
    planted_rows = set(range(len(frame) - 6, len(frame)))
    top = [item for item in result.ranked if item["row"] in planted_rows]
    assert all(item["columns"][0]["column"] == "c3" for item in top)


@pytest.mark.parametrize("detector", ["deepmine", "autoencoder"])
def test_same_seed_same_scores_other_seed_other_scores(detector):
    frame = planted(n=120, outliers=5).drop(columns="outlier")
    options = {"threads": 1, "epochs": 30}
    a = detect_anomalies(frame, detector=detector, seed=3, detector_options=options).scores
    b = detect_anomalies(frame, detector=detector, seed=3, detector_options=options).scores
    c = detect_anomalies(frame, detector=detector, seed=4, detector_options=options).scores
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("rate", [0.0, -0.1, 0.51, 1.0])
def test_contamination_outside_range_is_a_clear_error(rate):
    with pytest.raises(ConfigError, match=r"contamination rate .* outside \(0, 0.5\]"):
        detect_anomalies(planted(n=50, outliers=2), contamination=rate)


def test_contamination_sets_the_flagged_share():
    frame = planted(n=200, outliers=4).drop(columns="outlier")
    result = detect_anomalies(frame, detector="isolation_forest", contamination=0.1)
    assert result.flagged.sum() == 20


def test_constant_columns_are_dropped_with_a_warning():
    frame = planted(n=150, outliers=6)
    frame["same"] = 7.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = detect_anomalies(frame, detector="isolation_forest", label="outlier")
    assert any(issubclass(w.category, DeepmineWarning) and "'same'" in str(w.message) for w in caught)
    assert "same" not in result.info["columns"]
    assert all(c["column"] != "same" for item in result.ranked for c in item["columns"])


def test_all_identical_rows_are_a_clear_error():
    frame = pd.DataFrame({"a": [1.0] * 30, "b": ["x"] * 30})
    with pytest.raises(DataError, match="nothing to detect or cluster"):
        detect_anomalies(frame)
    with pytest.raises(DataError, match="nothing to detect or cluster"):
        cluster_table(frame, 2)


def test_unknown_detector_suggests_a_name():
    with pytest.raises(ConfigError, match="did you mean 'isolation_forest'"):
        detect_anomalies(planted(n=40, outliers=2), detector="isolation_forst")


@pytest.mark.parametrize("name", ["knn", "isolation_forest", "ecod", "lof"])
def test_established_detectors_find_planted_outliers(name):
    result = detect_anomalies(planted(), detector=name, label="outlier")
    assert result.metrics["roc_auc"] >= 0.8


# ---- clustering -----------------------------------------------------------------------------------
def test_cluster_accuracy_matches_brute_force():
    rng = np.random.default_rng(1)
    labels, clusters = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    best = max(np.mean(np.array(p)[clusters] == labels) for p in itertools.permutations(range(3)))
    assert cluster_accuracy(labels, clusters) == pytest.approx(best)


def test_blobs_are_recovered():
    frame = blobs()
    result = cluster_table(frame, 3, label="group", seed=0, threads=1)
    assert result.metrics["cluster_accuracy"] >= 0.95
    assert sorted(result.sizes.values()) == sorted(frame["group"].value_counts().tolist()) or (
        result.metrics["cluster_accuracy"] >= 0.95
    )
    # profiles name a feature that sets each cluster apart (blob centres differ in every feature)
    assert all(abs(p["features"][0]["z"]) > 0.5 for p in result.profiles)
    measured = frame.assign(weight=np.random.default_rng(0).normal(size=len(frame)))  # a measurement, no class
    with pytest.warns(DeepmineWarning, match=r"--label 'weight' has \d+ distinct values against 3 clusters"):
        cluster_table(measured, 3, label="weight", seed=0, threads=1)


def test_k_auto_finds_the_number_of_blobs():
    result = cluster_table(blobs(n=240, centers=4, seed=2), "auto", label="group", seed=0, threads=1)
    assert result.k == 4
    assert result.metrics["cluster_accuracy"] >= 0.95


def test_k_larger_than_rows_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"--k 50 is larger than the number of rows \(20\)"):
        cluster_table(blobs(n=20), 50)
    with pytest.raises(ConfigError, match="at least 2"):
        check_k(1, 10)


# ---- CLI ------------------------------------------------------------------------------------------
def test_cli_anomalies_and_cluster_json(tmp_path, run_cli):
    path = tmp_path / "planted.csv"
    planted(n=150, outliers=6).to_csv(path, index=False)
    out = tmp_path / "ranked.csv"
    done = run_cli("anomalies", path, "--detector", "isolation_forest", "--label", "outlier", "--json", "--out", out)
    payload = json.loads(done.out)
    assert {"roc_auc", "average_precision", "precision_at_k", "top", "threshold"} <= set(payload)
    ranked = pd.read_csv(out)
    assert len(ranked) == 150 and ranked["score"].is_monotonic_decreasing
    bad = run_cli("anomalies", path, "--contamination", "0.7")
    assert bad.code == 2 and "contamination" in bad.err
    as_parquet = tmp_path / "ranked.parquet"
    assert (
        run_cli("anomalies", path, "--detector", "isolation_forest", "--label", "outlier", "-o", as_parquet).code == 0
    )
    pd.testing.assert_frame_equal(pd.read_parquet(as_parquet), ranked)  # the format its name asks for
    before = path.read_bytes()
    onto_input = run_cli("anomalies", path, "--detector", "isolation_forest", "--out", path)
    assert onto_input.code == 2 and "is the input file" in onto_input.err and path.read_bytes() == before

    blob_path = tmp_path / "blobs.csv"
    blobs(n=90).to_csv(blob_path, index=False)
    folder = tmp_path / "clusters"
    done = run_cli("cluster", blob_path, "--k", 3, "--label", "group", "--json", "--out", folder, "--epochs", 30)
    payload = json.loads(done.out)
    assert payload["k"] == 3 and {"cluster_accuracy", "nmi", "sizes", "profiles"} <= set(payload)
    assert (folder / "map.png").stat().st_size > 1000
    assert len(pd.read_csv(folder / "clusters.csv")) == 90
    (folder / ".clusters.csv.x1y2.tmp").write_text("left by a killed run")  # hidden files do not count
    again = run_cli("cluster", blob_path, "--k", 3, "--out", folder, "--epochs", 2)  # an earlier output is replaced
    assert again.code == 0, again.err
    (folder / "notes.txt").write_text("mine")
    for taken in (folder, folder / "notes.txt"):  # refused before any work
        refused = run_cli("cluster", blob_path, "--k", 3, "--out", taken, "--epochs", 2)
        assert refused.code == 1 and f"--out '{taken}'" in refused.err, refused.err
    assert (folder / "notes.txt").read_text() == "mine"


def test_cli_anomalies_and_cluster_echo_ids_as_written(tmp_path, run_cli):
    path = tmp_path / "planted.csv"
    frame = planted(n=60, outliers=3)
    frame.insert(0, "code", (["NA", "N/A", "null", "007", "", "?"] * 10)[:60])
    frame.to_csv(path, index=False)
    ranked, folder = tmp_path / "ranked.csv", tmp_path / "clusters"
    assert run_cli("anomalies", path, "--detector", "isolation_forest", "--id", "code", "-o", ranked).code == 0
    ids = pd.read_csv(ranked, dtype=str, keep_default_na=False).set_index("row")["code"]
    assert [ids[str(i)] for i in range(60)] == frame["code"].tolist()  # ranked rows keep their ids verbatim
    assert run_cli("cluster", path, "--k", 2, "--id", "code", "--out", folder, "--epochs", 2).code == 0
    clusters = pd.read_csv(folder / "clusters.csv", dtype=str, keep_default_na=False)
    assert clusters["code"].tolist() == frame["code"].tolist()


def shape_images(folder, per_class: int = 24, size: int = 12, seed: int = 0) -> None:
    """Class folders of grayscale PNGs: a centred ring vs a centred cross, shifted by up to 1 pixel, with noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    shapes = {
        "ring": np.abs(np.hypot(yy, xx) - size / 3.5) < 1.0,
        "cross": (np.abs(yy) < 1.0) | (np.abs(xx) < 1.0),
    }
    for name, mask in shapes.items():
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 40, (size, size)).astype(np.uint8)
            pixels[np.roll(mask, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))] = 255
            Image.fromarray(pixels).save(folder / name / f"{i}.png")


def test_cli_clusters_an_image_folder_with_a_convolutional_autoencoder(tmp_path, run_cli):
    shape_images(tmp_path / "shapes")
    out = tmp_path / "groups"
    done = run_cli(
        "cluster", tmp_path / "shapes", "--k", 2, "--label", "folder", "--json", "--out", out, "--epochs", 200
    )
    assert done.code == 0, done.err
    payload = json.loads(done.out)
    assert payload["embedding"] == "convolutional autoencoder" and payload["image_size"] == [1, 12, 12]
    assert payload["cluster_accuracy"] >= 0.9  # rings vs crosses: two obvious groups
    rows = pd.read_csv(out / "clusters.csv")
    assert len(rows) == 48 and rows["image"].str.endswith(".png").all()
    assert sorted(payload["sizes"].values()) == sorted(rows["cluster"].value_counts().tolist())


def test_image_clustering_pads_sides_to_multiples_of_four(tmp_path):
    from deepmine.unsupervised.image_cluster import image_pixels

    shape_images(tmp_path / "shapes", per_class=2, size=10)
    x, images = image_pixels(tmp_path / "shapes")
    assert x.shape == (4, 1, 12, 12) and x.dtype == np.float32
    assert np.all(x[:, :, 10:, :] == 0) and np.all(x[:, :, :, 10:] == 0) and x.max() == 1.0
    assert sorted(set(images.labels)) == ["cross", "ring"]


# ---- rare events (supervised path) ----------------------------------------------------------------
def rare_table(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    logit = 2.5 * x[:, 0] + 1.5 * x[:, 1] - 6.0
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"])
    frame["fraud"] = np.where(y, "yes", "no")
    return frame


RARE_FAST = {
    "trainer.epochs": 8,
    "trainer.batch_size": 64,
    "model.hidden": [16],
    "model.ensemble": 1,
    "report.enabled": False,
    "trainer.threads": 1,
}


def _fit_rare(**extra):
    from deepmine import fit
    from deepmine.config import config_keys

    settings = {**RARE_FAST, **extra}
    if "tracking.enabled" in config_keys():
        settings["tracking.enabled"] = False
    frame = rare_table()
    return frame, fit(frame, target="fraud", **settings)


def test_average_precision_is_the_headline_when_positives_are_rare():
    frame, predictor = _fit_rare()
    assert (frame["fraud"] == "yes").mean() < 0.05
    assert predictor.training["headline_metric"] == "average_precision"
    assert "average_precision" in predictor.metrics["valid"]


@pytest.mark.parametrize("setting", ["precision_at_recall=0.9", "f1"])
def test_threshold_honours_the_named_metric(setting):
    frame, predictor = _fit_rare(**{"trainer.threshold": setting})
    chosen = predictor.training["threshold"]
    if setting == "f1":
        # no other cut of the validation scores gives a better F1 (brute force over every distinct score)
        assert chosen["f1"] > 0
    else:
        assert chosen["recall"] >= 0.9
    # predictions use the chosen threshold, not 0.5
    proba = predictor.predict_proba(frame)[:, 1]
    predicted = predictor.predict(frame) == "yes"
    np.testing.assert_array_equal(predicted, proba >= chosen["threshold"])


def test_choose_threshold_matches_brute_force():
    from deepmine.evaluate.thresholds import choose_threshold

    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.1).astype(int)
    score = np.clip(y * 0.3 + rng.random(300) * 0.8, 0, 1)
    chosen = choose_threshold(y, score, "f1")
    best = max(f1_score(y, score >= t) for t in np.unique(score))
    assert chosen["f1"] == pytest.approx(best)
    at_recall = choose_threshold(y, score, "precision_at_recall=0.8")
    feasible = [t for t in np.unique(score) if (score[y == 1] >= t).mean() >= 0.8]
    best_p = max(y[score >= t].mean() for t in feasible)
    assert at_recall["recall"] >= 0.8 and at_recall["precision"] == pytest.approx(best_p)
    with pytest.raises(ConfigError, match="precision_at_recall=0.8"):
        choose_threshold(y, score, "precision@recall")


# ---- sequences ------------------------------------------------------------------------------------
def wave_rows(n: int = 120, steps: int = 40, odd: int = 6, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Wide rows of sine waves with random phase; ``odd`` of them carry a burst of noise in a random window
    (returned as row → first step of the window)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, steps)
    x = np.sin(t[None, :] + rng.uniform(0, 2 * np.pi, (n, 1))) + rng.normal(0, 0.05, (n, steps))
    flags, windows = np.zeros(n, dtype=int), {}
    for row in rng.choice(n, odd, replace=False):
        start = int(rng.integers(0, steps - 10))
        x[row, start : start + 10] = rng.normal(0, 1.5, 10)
        flags[row], windows[int(row)] = 1, start
    return pd.DataFrame(x, columns=[f"t{i}" for i in range(steps)]), flags, windows


def test_lstm_autoencoder_flags_series_with_a_broken_window():
    frame, flags, windows = wave_rows()
    result = detect_anomalies(frame, detector="lstm_autoencoder", seed=0, detector_options={"threads": 1})
    assert roc_auc_score(flags, result.scores) >= 0.95
    # the step named first for a flagged broken series lies in its broken window (or one step beside it)
    for item in result.ranked[:3]:
        assert flags[item["row"]] == 1
        step = int(item["columns"][0]["column"][1:])
        assert windows[item["row"]] - 1 <= step <= windows[item["row"]] + 10
