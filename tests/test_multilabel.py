"""Multilabel targets: delimited label lists, one sigmoid per label, metrics, predictions, artifacts, estimators."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from deepmine.config import build_config
from deepmine.data.schema import infer_schema
from deepmine.exceptions import ConfigError, DataError
from deepmine.tasks.multilabel import detect_delimiter, multilabel_metrics
from deepmine.tasks.supervised import fit_table

FAST = {
    "trainer.epochs": 40,
    "trainer.batch_size": 32,
    "model.hidden": [32],
    "model.ensemble": 1,
    "report.enabled": False,
    "tracking.enabled": False,
}
CLI_FAST = ["--set", "trainer.epochs=40", "--set", "trainer.batch_size=32", "--set", "model.hidden=[32]"]


def threshold_table(n: int = 400, seed: int = 0, sep: str = "|") -> pd.DataFrame:
    """Labels from numeric thresholds: hot when x1 > 0, wet when x2 > 0, both, or none."""
    rng = np.random.default_rng(seed)
    x1, x2, noise = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    tags = [sep.join(t for t, on in (("hot", a > 0), ("wet", b > 0)) if on) for a, b in zip(x1, x2, strict=True)]
    return pd.DataFrame({"x1": x1, "x2": x2, "noise": noise, "tags": tags})


def keyword_texts(n: int = 300, seed: int = 1) -> tuple[list[str], list[list[str]]]:
    """Texts holding keywords of topics (sport, money, food) among filler words; the topics are the labels."""
    rng = np.random.default_rng(seed)
    keywords = {"sport": ["goal", "match", "team"], "money": ["bank", "price", "market"], "food": ["pizza", "soup"]}
    filler = ["the", "a", "today", "people", "said", "new", "very", "with", "about", "some"]
    texts, labels = [], []
    for _ in range(n):
        topics = [t for t in keywords if rng.random() < 0.45] or [str(rng.choice(list(keywords)))]
        words = list(rng.choice(filler, 6)) + [str(rng.choice(keywords[t])) for t in topics]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(topics)
    return texts, labels


@pytest.fixture(scope="module")
def fitted():
    frame = threshold_table()
    return fit_table(frame, build_config(None, {**FAST, "columns.target": "tags", "columns.label_sep": "|"})), frame


def test_delimiter_detected_only_for_repeating_label_lists():
    assert detect_delimiter(pd.Series(["a|b", "b|c", "a|c", "a", "b|c|a"] * 4)) == "|"
    assert detect_delimiter(pd.Series(["x;y", "y;z", "x;z", "y;x"] * 5)) == ";"
    assert detect_delimiter(pd.Series(["red,blue", "blue,green", "green,red", "red"] * 5)) == ","
    # commas inside free text: the pieces never repeat, so it is not a label list
    sentences = pd.Series([f"word{i}, more{i}, and{i}" for i in range(20)])
    assert detect_delimiter(sentences) is None
    assert detect_delimiter(pd.Series(["a", "b", "c"] * 7)) is None
    assert detect_delimiter(pd.Series(["1,5", "2,5", "1,0", "2,0"] * 5)) is None  # decimal commas
    # a few lists of labels that stand alone elsewhere are label lists; too few, or pieces never alone, are not
    assert detect_delimiter(pd.Series(["hot", "wet"] * 40 + ["hot|wet"] * 6)) == "|"
    assert detect_delimiter(pd.Series(["hot", "wet"] * 40 + ["hot|wet"] * 4)) is None
    places = pd.Series(["Paris", "Lyon"] * 40 + ["Paris, France", "Lyon, France"] * 5)
    assert detect_delimiter(places) is None


def test_schema_reports_multilabel_with_labels_and_delimiter():
    frame = threshold_table(sep=",")
    schema = infer_schema(frame[frame["tags"].str.contains(",")], "tags")  # auto: most values hold ','
    assert schema.task == "multilabel" and schema.classes == ["hot", "wet"] and schema.label_sep == ","
    assert f"{schema.task} ({schema.task_reason})" == "multilabel (2 labels, delimiter ',')"  # as fit prints it
    forced = infer_schema(threshold_table(), "tags", task="multilabel")  # under half hold '|': forced
    assert forced.task == "multilabel" and forced.label_sep == "|"
    forced_semicolons = infer_schema(threshold_table(sep=";"), "tags", task="multilabel")  # detected, not assumed
    assert forced_semicolons.label_sep == ";" and forced_semicolons.classes == ["hot", "wet"]
    auto = infer_schema(threshold_table(), "tags")  # a quarter hold '|', and "hot"/"wet" also stand alone
    assert auto.task == "multilabel" and auto.classes == ["hot", "wet"] and auto.label_sep == "|"
    lists = ["a|b", "b|c", "a|c"] * 9 + ["x", "y", "z"] * 25  # a quarter are lists of labels never seen alone
    hinted = infer_schema(threshold_table(n=102).assign(tags=lists), "tags")
    assert hinted.task == "multiclass" and "--task multilabel" in hinted.task_reason
    assert (
        "--task multilabel"
        not in infer_schema(threshold_table().assign(tags=list("abc") * 133 + ["a"]), "tags").task_reason
    )
    by_config = infer_schema(threshold_table(sep=";"), "tags", label_sep=";")
    assert by_config.task == "multilabel" and by_config.classes == ["hot", "wet"]


def test_learns_label_thresholds_and_predicts_label_lists(fitted):
    predictor, frame = fitted
    assert predictor.task == "multilabel"
    valid = predictor.metrics["valid"]
    assert valid["micro_f1"] > 0.9 and valid["subset_accuracy"] > 0.8
    test = threshold_table(n=200, seed=7)
    labels = predictor.predict(test)
    expected = [[t for t, on in (("hot", a > 0), ("wet", b > 0)) if on] for a, b in zip(test.x1, test.x2, strict=True)]
    assert np.mean([sorted(p) == e for p, e in zip(labels, expected, strict=True)]) > 0.8
    proba = predictor.predict_proba(test)
    assert proba.shape == (200, 2) and proba.min() >= 0 and proba.max() <= 1
    assert [("hot" in p) for p in labels] == list(proba[:, 0] >= 0.5)
    scored = predictor.evaluate(test)  # empty values are rows with no label, not dropped
    assert scored["rows"] == 200 and scored["micro_f1"] > 0.9


def test_predict_frame_joins_labels_and_has_a_probability_per_label(fitted):
    predictor, _ = fitted
    test = pd.DataFrame({"x1": [2.0, -2.0, 2.0, -2.0], "x2": [2.0, 2.0, -2.0, -2.0], "noise": [0.0] * 4})
    out = predictor.predict_frame(test)
    assert list(out.columns) == ["prediction", "proba_hot", "proba_wet"]
    assert out["prediction"].tolist() == ["hot|wet", "wet", "hot", ""]


def test_same_seed_gives_identical_predictions(fitted):
    predictor, frame = fitted
    again = fit_table(frame, build_config(None, {**FAST, "columns.target": "tags", "columns.label_sep": "|"}))
    np.testing.assert_array_equal(again.predict_proba(frame), predictor.predict_proba(frame))


def test_metrics_match_hand_counts():
    truth = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    pred = np.array([[1, 0], [1, 0], [0, 0], [1, 1]])
    m = multilabel_metrics(truth, pred)
    # tp=3, fp=1, fn=1 → micro F1 = 6/8; 2 of 8 cells wrong; 2 of 4 rows exact
    assert m["micro_f1"] == pytest.approx(0.75) and m["hamming_loss"] == pytest.approx(0.25)
    assert m["subset_accuracy"] == pytest.approx(0.5)
    assert m["samples_f1"] == pytest.approx((1 + 2 / 3 + 1 + 2 / 3) / 4)  # an empty/empty row is a match


def test_cli_fit_evaluate_predict_and_fresh_process_round_trip(tmp_path, run_cli):
    data, test_path, art = tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "model"
    threshold_table().to_csv(data, index=False)
    threshold_table(n=120, seed=3).to_csv(test_path, index=False)
    fit = run_cli("fit", data, "--target", "tags", "--task", "multilabel", "--out", art, "--no-track", *CLI_FAST)
    assert fit.code == 0, fit.err
    assert (art / "report.html").exists() and (art / "weights.safetensors").exists()
    assert json.loads((art / "deepmine.json").read_text())["schema"]["label_sep"] == "|"
    scored = run_cli("evaluate", art, test_path, "--json")
    assert scored.code == 0, scored.err
    metrics = json.loads(scored.out)
    assert set(metrics) >= {"micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy"}
    assert metrics["micro_f1"] > 0.85
    out = tmp_path / "pred.csv"
    assert run_cli("predict", art, test_path, "--output", out).code == 0
    written = pd.read_csv(out, keep_default_na=False)
    assert list(written.columns) == ["prediction", "proba_hot", "proba_wet"]
    hot = written["prediction"].str.split("|").apply(lambda labels: "hot" in labels)
    assert hot.tolist() == (written["proba_hot"] >= 0.5).tolist()
    code = (
        "import json, sys, deepmine; p = deepmine.load(sys.argv[1]); "
        "print(json.dumps({'proba': p.predict_proba(sys.argv[2]).tolist(), "
        "'labels': [list(v) for v in p.predict(sys.argv[2])]}))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(art), str(test_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout)
    np.testing.assert_allclose(fresh["proba"], written[["proba_hot", "proba_wet"]].to_numpy(), atol=1e-6)
    assert ["|".join(v) for v in fresh["labels"]] == written["prediction"].tolist()


def test_text_classifier_learns_keyword_topics_from_label_lists():
    from deepmine.sklearn_api import TextClassifier

    texts, labels = keyword_texts()
    model = TextClassifier(epochs=40, batch_size=32, hidden=(32,), model__ensemble=1)
    model.fit(texts[:220], labels[:220])
    assert list(model.classes_) == ["food", "money", "sport"] and model.multilabel_
    predicted = model.predict(texts[220:])
    assert all(isinstance(p, list) for p in predicted)
    proba = model.predict_proba(texts[220:])
    assert proba.shape == (80, 3)
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer(classes=["food", "money", "sport"])
    micro = f1_score(binarizer.fit_transform(labels[220:]), binarizer.transform(predicted), average="micro")
    assert micro > 0.9
    assert model.score(texts[220:], labels[220:]) > 0.7


def test_tabular_classifier_accepts_tuples_and_sets():
    from deepmine.sklearn_api import TabularClassifier

    frame = threshold_table(n=300)
    y = [set(t.split("|")) - {""} for t in frame["tags"]]
    model = TabularClassifier(epochs=40, batch_size=32, hidden=(32,), model__ensemble=1)
    model.fit(frame[["x1", "x2", "noise"]], y)
    assert list(model.classes_) == ["hot", "wet"]
    assert model.predict(pd.DataFrame({"x1": [3.0], "x2": [3.0], "noise": [0.0]}))[0] == ["hot", "wet"]


def test_single_label_everywhere_is_a_one_line_error(tmp_path, run_cli):
    frame = threshold_table(n=60)
    frame["tags"] = "hot"
    with pytest.raises(DataError, match="single label 'hot'"):
        infer_schema(frame, "tags", task="multilabel")
    data = tmp_path / "one.csv"
    frame.to_csv(data, index=False)
    done = run_cli("fit", data, "--target", "tags", "--task", "multilabel", "--no-track", "--no-report")
    assert done.code == 1 and done.err.startswith("error: ") and "Traceback" not in done.err
    assert "at least two labels" in done.err


def test_unknown_label_at_evaluate_and_focal_loss_are_clear_errors(fitted):
    predictor, _ = fitted
    test = threshold_table(n=20, seed=5)
    test.loc[0, "tags"] = "hot|snowy"
    with pytest.raises(DataError, match="'snowy'"):
        predictor.evaluate(test)
    with pytest.raises(ConfigError, match="focal"):
        fit_table(
            threshold_table(n=60),
            build_config(None, {**FAST, "columns.target": "tags", "task": "multilabel", "trainer.loss": "focal"}),
        )


def test_per_label_thresholds_tuned_on_validation():
    frame = threshold_table()
    config = build_config(None, {**FAST, "columns.target": "tags", "trainer.threshold": "f1", "task": "multilabel"})
    predictor = fit_table(frame, config)
    thresholds = predictor.model_spec["label_thresholds"]
    assert len(thresholds) == 2 and all(0 < t < 1 for t in thresholds)
    proba = predictor.predict_proba(frame)
    hot = ["hot" in labels for labels in predictor.predict(frame)]
    assert hot == list(proba[:, 0] >= thresholds[0])
