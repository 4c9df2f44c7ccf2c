"""Explanations: Integrated Gradients completeness, permutation importance, and `deepmine explain --json`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import make_table

import deepmine
from deepmine.artifact import write_checksums
from deepmine.explain import integrated_gradients, permutation_importance

SMALL = {"trainer": {"epochs": 15, "batch_size": 32}, "model": {"hidden": [32]}}


def with_noise(task: str, seed: int = 0):
    frame = make_table(300, seed=seed, task=task)
    frame["noise"] = np.random.default_rng(seed + 1).normal(size=len(frame))  # unrelated to the label
    return frame


@pytest.fixture(scope="module")
def binary():
    frame = with_noise("binary")
    return deepmine.fit(frame, target="label", seed=0, **SMALL, report={"enabled": False}), frame


@pytest.fixture(scope="module")
def regression():
    frame = with_noise("regression")
    model = {"hidden": [32], "ensemble": 1}
    return deepmine.fit(frame, target="label", seed=0, trainer=SMALL["trainer"], model=model), frame


@pytest.mark.parametrize("which", ["binary", "regression"])
def test_integrated_gradients_completeness(request, which):
    predictor, frame = request.getfixturevalue(which)
    result = integrated_gradients(predictor, frame.head(6))
    columns = [s.name for s in predictor.schema.features]
    for row in result["rows"]:
        assert set(row["attributions"]) == set(columns)
        gap = row["output"] - row["baseline_output"]
        total = sum(row["attributions"].values())
        assert abs(total - gap) <= 0.01 * abs(gap) + 1e-6, (total, gap)


def test_integrated_gradients_output_matches_the_predictor(binary):
    predictor, frame = binary
    result = integrated_gradients(predictor, frame.head(4))
    proba = predictor.predict_proba(frame.head(4))
    for row, p in zip(result["rows"], proba, strict=True):
        assert row["output"] == pytest.approx(p.max(), abs=1e-5)
        assert row["prediction"] == predictor.classes_[p.argmax()]


def test_a_decision_threshold_is_explained_as_predict_applies_it(binary, monkeypatch):
    from deepmine.explain import token_attributions

    predictor, frame = binary
    rows = frame.head(40)
    proba = predictor.predict_proba(rows)
    monkeypatch.setitem(predictor.model_spec, "decision_threshold", 0.25)  # as `trainer.threshold=f1` may choose
    predicted = predictor.predict(rows)
    flipped = [i for i, p in enumerate(proba) if 0.25 <= p[1] < 0.5]  # argmax says 'no', the threshold 'yes'
    assert flipped and all(predicted[i] == "yes" for i in flipped)
    result = integrated_gradients(predictor, rows)
    tokens = token_attributions(predictor, rows)
    for i in flipped:
        row = result["rows"][i]
        assert row["prediction"] == "yes" and row["explained"] == "probability of 'yes'"
        assert row["output"] == pytest.approx(proba[i, 1], abs=1e-5)
        note, scores = rows["note"].iloc[i], tokens[i]["note"]
        words = [t for t, _ in scores]
        without = [" ".join(words[:k] + words[k + 1 :]) for k in range(len(words))]
        expected = proba[i, 1] - predictor.predict_proba(rows.iloc[[i] * len(words)].assign(note=without))[:, 1]
        assert note.split() == words
        np.testing.assert_allclose([s for _, s in scores], expected, atol=1e-5)


@pytest.fixture(scope="module")
def multilabel():
    from test_multilabel import threshold_table

    frame = threshold_table(n=300)
    options = {"columns.label_sep": "|", "report.enabled": False, "tracking.enabled": False}
    return deepmine.fit(frame, target="tags", seed=0, **SMALL, **options), frame


def test_multilabel_rows_explain_their_most_probable_labels_probability(multilabel):
    predictor, frame = multilabel
    result = integrated_gradients(predictor, frame.head(5))
    proba = predictor.predict_proba(frame.head(5))
    predicted = predictor.predict(frame.head(5))
    for row, p, labels in zip(result["rows"], proba, predicted, strict=True):
        label = predictor.schema.classes[int(p.argmax())]
        assert row["prediction"] == list(labels) and row["explained"] == f"probability of label '{label}'"
        assert row["output"] == pytest.approx(p.max(), abs=1e-5)  # a probability, not a raw logit
        gap = row["output"] - row["baseline_output"]
        assert abs(sum(row["attributions"].values()) - gap) <= 0.01 * abs(gap) + 1e-6
        assert abs(row["attributions"]["noise"]) < max(abs(row["attributions"]["x1"]), abs(row["attributions"]["x2"]))


@pytest.mark.parametrize("which", ["binary", "regression"])
def test_permutation_ranks_informative_above_noise(request, which):
    predictor, frame = request.getfixturevalue(which)
    result = permutation_importance(predictor, frame, repeats=3)
    scores = {c["column"]: c["importance"] for c in result["columns"]}
    assert result["mode"] == "metric"
    assert result["metric"] == ("roc_auc" if which == "binary" else "rmse")
    assert scores["age"] > scores["noise"]
    assert result["columns"][0]["column"] == "age"


def test_multilabel_permutation_scores_the_labels_predict_gives(multilabel, monkeypatch):
    predictor, frame = multilabel
    monkeypatch.setitem(predictor.model_spec, "label_thresholds", [0.9, 0.1])  # as `trainer.threshold=f1` may choose
    result = permutation_importance(predictor, frame, repeats=1)
    assert result["metric"] == "micro_f1"
    assert result["baseline_score"] == pytest.approx(predictor.score_frame(frame, "rows")["micro_f1"], abs=1e-12)


def test_permutation_without_target_measures_prediction_change(binary):
    predictor, frame = binary
    result = permutation_importance(predictor, frame.drop(columns="label"))
    assert result["mode"] == "prediction_change"
    scores = {c["column"]: c["importance"] for c in result["columns"]}
    assert scores["age"] > scores["noise"] >= 0


def test_explain_json_contract(run_cli, binary, tmp_path):
    predictor, frame = binary
    predictor.save(tmp_path / "model")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    result = run_cli("explain", tmp_path / "model", tmp_path / "rows.csv", "--rows", 3, "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)  # exactly one JSON object on stdout
    assert result.out.count("\n") == 1
    assert {"task", "target", "classes", "importance", "attributions"} <= set(payload)
    assert payload["importance"]["mode"] == "metric"
    rows = payload["attributions"]["rows"]
    assert len(rows) == 3
    assert set(rows[0]["attributions"]) == {s.name for s in predictor.schema.features}
    assert "median" in payload["attributions"]["baseline"]["description"]


def test_explain_people_output_goes_to_stderr(run_cli, binary, tmp_path):
    predictor, frame = binary
    predictor.save(tmp_path / "model")
    frame.drop(columns="label").to_csv(tmp_path / "rows.csv", index=False)
    result = run_cli("explain", tmp_path / "model", tmp_path / "rows.csv", "--rows", 1)
    assert result.code == 0, result.err
    assert result.out == ""
    assert "permutation importance" in result.err and "row 1" in result.err


def test_explain_text_and_json_number_the_same_rows_from_one(run_cli, binary, tmp_path):
    predictor, frame = binary
    predictor.save(tmp_path / "model")
    frame.drop(columns="label").to_csv(tmp_path / "rows.csv", index=False)
    args = ("explain", tmp_path / "model", tmp_path / "rows.csv", "--rows", 2)
    text, as_json = run_cli(*args), run_cli(*args, "--json")
    assert text.code == as_json.code == 0, text.err + as_json.err
    json_rows = json.loads(as_json.out)["attributions"]["rows"]
    assert [row["row"] for row in json_rows] == [1, 2]  # --rows 2: data rows 1 and 2
    text_rows = [line.split(":")[0] for line in text.err.splitlines() if line.startswith("row ")]
    assert text_rows == [f"row {row['row']}" for row in json_rows]


def test_a_predicted_value_is_shown_with_four_digits_in_explain_and_the_report(run_cli, regression, tmp_path):
    from deepmine.report.build import render_report

    predictor, frame = regression
    predictor.save(tmp_path / "model")
    frame.head(3).to_csv(tmp_path / "rows.csv", index=False)
    args = ("explain", tmp_path / "model", tmp_path / "rows.csv", "--rows", 1)
    text, as_json = run_cli(*args), run_cli(*args, "--json")
    assert text.code == as_json.code == 0, text.err + as_json.err
    value = json.loads(as_json.out)["attributions"]["rows"][0]["prediction"]  # JSON keeps every digit
    assert f"row 1: {value:.4g} (predicted value {value:.4g}, baseline" in text.err
    html = render_report(predictor)
    shown = re.findall(r"<p><b>row \d+</b>: predicted <b>([^<]*)</b> \(actual ([^)]*)\)", html)
    assert shown and all(len(re.sub(r"[-.]", "", p)) <= 4 and len(re.sub(r"[-.]", "", a)) <= 4 for p, a in shown)


def test_explain_missing_artifact_is_a_clear_error(run_cli, tmp_path):
    result = run_cli("explain", tmp_path / "nope", tmp_path / "rows.csv", "--json")
    assert result.code == 1
    assert "does not exist" in result.err


@pytest.mark.parametrize("kind", ["image", "tagger", "recommender", "forecaster", "sequence"])
def test_explain_names_itself_and_the_kind_it_takes(kind, tmp_path, run_cli):
    artifact = tmp_path / "model"
    artifact.mkdir()
    (artifact / "deepmine.json").write_text(json.dumps({"kind": kind, "format_version": 1}))
    write_checksums(artifact, ["deepmine.json"])
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    article = "an" if kind[0] in "aeiou" else "a"
    done = run_cli("explain", artifact, tmp_path / "rows.csv")
    assert done.code == 1 and len(done.err.strip().splitlines()) == 1
    assert done.err.startswith(
        f"error: artifact '{artifact}' is {article} {kind} model; `deepmine explain` supports table models only "
        "(`deepmine predict` and `deepmine evaluate` take every kind)"
    ), done.err
