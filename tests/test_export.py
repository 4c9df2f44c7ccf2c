"""Whole-pipeline export: the ONNX / TorchScript graph reproduces the predictor on raw rows."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import make_table

import deepmine
from deepmine.artifact import write_checksums
from deepmine.exceptions import ConfigError, ExportCheckError, ExportError
from deepmine.export import export_predictor, graph_inputs
from deepmine.features.categorical import as_keys

SMALL = {
    "model.hidden": [16],
    "trainer.batch_size": 64,
    "trainer.epochs": 3,
    "columns.drop": ["joined", "note"],
}
TOL = 1e-5


def fit_small(task: str = "binary", **settings):
    return deepmine.fit(make_table(n=240, task=task), target="label", **{**SMALL, **settings})


def raw_rows(n: int = 300, seed: int = 1, task: str = "binary") -> pd.DataFrame:
    """Fresh raw rows with missing numbers, out-of-range numbers, and unseen and missing categories."""
    frame = make_table(n=n, seed=seed, task=task).drop(columns=["label", "joined", "note"])
    rng = np.random.default_rng(seed)
    pick = lambda share: rng.random(n) < share  # noqa: E731
    frame.loc[pick(0.1), "income"] = np.nan
    frame.loc[pick(0.03), "age"] = 150.0
    frame.loc[pick(0.03), "age"] = -3.0
    frame["color"] = frame["color"].astype(object)
    frame.loc[pick(0.06), "color"] = "purple"
    frame.loc[pick(0.06), "color"] = None
    frame.loc[pick(0.05), "member"] = None
    frame.loc[pick(0.03), "member"] = "maybe"
    return frame


def reference(predictor, frame: pd.DataFrame) -> np.ndarray:
    return predictor.predict_proba(frame) if predictor.is_classifier else predictor.predict(frame)


def run_onnx(path, inputs):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def run_torchscript(path, inputs):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still loads
        module = torch.jit.load(str(path))
    with torch.inference_mode():
        return module(*[torch.from_numpy(a) for a in inputs.values()]).numpy()


@pytest.fixture(scope="module")
def ensemble_binary():
    return fit_small("binary", **{"model.ensemble": 3})


@pytest.fixture(scope="module")
def single_binary():
    return fit_small("binary", **{"model.ensemble": 1})


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_ensemble_binary_export_matches_predict_proba(ensemble_binary, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    frame = raw_rows()
    inputs = graph_inputs(ensemble_binary, frame)
    assert (inputs["categorical"] == 0).any() and (inputs["categorical"] == 1).any()  # unseen and missing
    assert np.isnan(inputs["numeric"]).any()
    path = tmp_path / f"model.{fmt}"
    result = export_predictor(ensemble_binary, path, fmt, sample=frame)
    assert result.rows == len(frame) >= 200 and result.max_abs_diff <= TOL
    got = (run_onnx if fmt == "onnx" else run_torchscript)(path, inputs)
    expected = ensemble_binary.predict_proba(frame)
    assert got.shape == expected.shape == (len(frame), 2)
    assert np.abs(got - expected).max() <= TOL
    # codes outside the vocabulary count as 'other' (0), like an unseen value
    outside = np.where(np.arange(len(frame))[:, None] % 2 == 0, 99, -1)
    odd = {**inputs, "categorical": np.where(inputs["categorical"] == 0, outside, inputs["categorical"])}
    guarded = (run_onnx if fmt == "onnx" else run_torchscript)(path, odd)
    assert np.abs(guarded - expected).max() <= TOL
    # a different batch size than the one traced: one row
    one = {k: v[:1] for k, v in inputs.items()}
    single = (run_onnx if fmt == "onnx" else run_torchscript)(path, one)
    assert np.abs(single - expected[:1]).max() <= TOL


def test_single_model_and_generated_check_rows(single_binary, tmp_path):
    pytest.importorskip("onnxruntime")
    result = export_predictor(single_binary, tmp_path / "single.onnx", "onnx")
    assert result.rows == 1000 and "generated" in result.sample and result.max_abs_diff <= TOL
    frame = raw_rows(seed=2)
    got = run_onnx(result.path, graph_inputs(single_binary, frame))
    assert np.abs(got - single_binary.predict_proba(frame)).max() <= TOL


@pytest.mark.parametrize(
    ("task", "settings"),
    [
        ("regression", {"model.ensemble": 2}),
        ("multiclass", {"model.ensemble": 2}),
        ("binary", {"model.ensemble": 1, "preprocess.numeric_scaling": "standard"}),
        ("binary", {"model.ensemble": 1, "preprocess.numeric_bins": 0, "model.numeric_embedding": 0}),
    ],
    ids=["regression", "multiclass", "standard-scaling", "no-bins-raw-numeric"],
)
def test_tasks_and_preprocessing_variants(tmp_path, task, settings):
    pytest.importorskip("onnxruntime")
    predictor = fit_small(task, **settings)
    frame = raw_rows(n=250, seed=3, task=task)
    result = export_predictor(predictor, tmp_path / "m.onnx", "onnx", sample=frame)
    got = run_onnx(result.path, graph_inputs(predictor, frame))
    expected = reference(predictor, frame)
    assert got.shape == expected.shape
    if task == "regression":
        assert got.dtype == np.float64
        assert np.abs(got - expected).max() <= TOL * max(1.0, predictor.pipeline.target_std)
        assert result.tolerance == TOL * max(1.0, predictor.pipeline.target_std)
    else:
        assert expected.shape[1] == len(predictor.schema.classes)
        assert np.abs(got - expected).max() <= TOL
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["task"] == task and sidecar["outputs"][0]["name"] == (
        "value" if task == "regression" else "probabilities"
    )


@pytest.mark.parametrize("keep", ["numeric", "categorical"])
def test_models_with_one_kind_of_column_have_one_input(tmp_path, keep):
    pytest.importorskip("onnxruntime")
    drop = ["color", "member"] if keep == "numeric" else ["age", "income"]
    predictor = fit_small("binary", **{"model.ensemble": 1, "columns.drop": ["joined", "note", *drop]})
    frame = raw_rows(n=200, seed=4)
    result = export_predictor(predictor, tmp_path / "m.onnx", "onnx", sample=frame)
    inputs = graph_inputs(predictor, frame)
    assert list(inputs) == [keep] == json.loads(result.sidecar.read_text())["input_names"]
    assert np.abs(run_onnx(result.path, inputs) - predictor.predict_proba(frame)).max() <= TOL
    result = export_predictor(predictor, tmp_path / "m.pt", "torchscript", sample=frame)
    assert np.abs(run_torchscript(result.path, inputs) - predictor.predict_proba(frame)).max() <= TOL


def test_sidecar_vocabularies_reproduce_the_codes(ensemble_binary, tmp_path):
    frame = raw_rows()
    result = export_predictor(ensemble_binary, tmp_path / "m.pt", "torchscript", sample=frame)
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["file"] == "m.pt" and sidecar["classes"] == ["no", "yes"]
    assert sidecar["numeric_columns"] == ["age", "income"]
    assert sidecar["categorical_columns"] == ["color", "member"]
    assert sidecar["check"]["rows"] == len(frame) and sidecar["check"]["max_abs_diff"] <= TOL
    codes = graph_inputs(ensemble_binary, frame)["categorical"]
    for i, column in enumerate(sidecar["categorical_columns"]):
        vocabulary = sidecar["vocabularies"][column]
        keys = as_keys(frame[column])
        by_sidecar = [1 if pd.isna(key) else vocabulary.get(key, 0) for key in keys]
        assert by_sidecar == codes[:, i].tolist()
    assert set(sidecar["vocabularies"]["member"]) == {"no", "yes"}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_sidecar_usage_example_runs_as_written(ensemble_binary, tmp_path, monkeypatch, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    result = export_predictor(ensemble_binary, tmp_path / f"model.{fmt}", fmt, rows=200)
    usage = json.loads(result.sidecar.read_text())["usage"]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(usage, "usage", "exec"), scope)
    expected = ensemble_binary.predict_proba(pd.DataFrame(scope["rows"]))
    assert np.abs(scope["probabilities"] - expected).max() <= TOL


def test_sidecar_says_how_predict_decides_a_binary_class(single_binary, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    plain = json.loads(export_predictor(single_binary, tmp_path / "plain.onnx", "onnx", rows=50).sidecar.read_text())
    assert plain["decision_threshold"] is None and "most probable" in plain["decision"]
    scope: dict = {}
    exec(compile(plain["usage"], "usage", "exec"), scope)
    row = pd.DataFrame(scope["rows"])
    assert scope["predicted"] == list(single_binary.predict(row))
    p = float(single_binary.predict_proba(row)[0, 1])
    threshold = p - 1e-3 if p < 0.5 else p + 1e-3  # the threshold flips this row away from its most probable class
    monkeypatch.setitem(single_binary.model_spec, "decision_threshold", threshold)
    result = export_predictor(single_binary, tmp_path / "tuned.onnx", "onnx", rows=50)
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["decision_threshold"] == pytest.approx(threshold) and "decision_threshold" in sidecar["decision"]
    exec(compile(sidecar["usage"], "usage", "exec"), scope)
    assert scope["predicted"] == list(single_binary.predict(row)) != [single_binary.classes_[int(p >= 0.5)]]


def test_text_and_datetime_columns_give_one_clear_error(tmp_path, run_cli):
    predictor = fit_small("binary", **{"model.ensemble": 1, "columns.drop": []})
    with pytest.raises(ExportError, match=r"'joined' \(datetime\), 'note' \(text\).*numeric, categorical and binary"):
        export_predictor(predictor, tmp_path / "m.onnx", "onnx")
    assert not list(tmp_path.iterdir())
    predictor.save(tmp_path / "art")
    done = run_cli("export", tmp_path / "art", "--format", "torchscript")
    assert done.code == 2 and done.err.count("\n") == 1
    assert "joined" in done.err and "note" in done.err and "columns.drop" in done.err


def test_a_mismatch_raises_and_writes_nothing(single_binary, tmp_path, monkeypatch):
    import deepmine.export as export

    monkeypatch.setattr(export, "run_torchscript", lambda path, inputs: np.full((200, 2), 0.5, dtype="float32"))
    with pytest.raises(ExportCheckError, match="differs from the predictor by up to"):
        export_predictor(single_binary, tmp_path / "m.pt", "torchscript", rows=200)
    assert not list(tmp_path.iterdir())


def test_unknown_format_suggests_the_closest(single_binary, tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'onx' \\(did you mean 'onnx'\\?\\)"):
        export_predictor(single_binary, tmp_path / "m", "onx")


def test_dynamo_exporter_is_the_fallback(single_binary, tmp_path, monkeypatch):
    pytest.importorskip("onnxscript")
    import deepmine.export.writers as writers

    def gone(*args, **kwargs):
        raise RuntimeError("the TorchScript-based exporter was removed")

    monkeypatch.setattr(writers, "_legacy_onnx", gone)
    frame = raw_rows(n=200, seed=5)
    result = export_predictor(single_binary, tmp_path / "d.onnx", "onnx", sample=frame)
    assert result.exporter == "onnx-dynamo" and result.max_abs_diff <= TOL
    got = run_onnx(result.path, graph_inputs(single_binary, frame))
    assert np.abs(got - single_binary.predict_proba(frame)).max() <= TOL
    onnx = pytest.importorskip("onnx")
    assert max(o.version for o in onnx.load(str(result.path)).opset_import if o.domain in ("", "ai.onnx")) >= 17


def test_both_exporters_failing_is_one_clear_error(single_binary, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import deepmine.export.writers as writers

    def fails(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::frobnicate\nmore detail")

    monkeypatch.setattr(writers, "_legacy_onnx", fails)
    monkeypatch.setattr(writers, "_dynamo_onnx", fails)
    with pytest.raises(ExportError, match=r"could not export this model to ONNX .*frobnicate.*--format torchscript"):
        export_predictor(single_binary, tmp_path / "m.onnx", "onnx", rows=50)
    assert not list(tmp_path.iterdir())


def test_missing_onnxruntime_says_how_to_install(single_binary, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"needs the 'onnxruntime' package.*deepmine\[export\]"):
        export_predictor(single_binary, tmp_path / "m.onnx", "onnx", rows=50)
    assert not list(tmp_path.iterdir())


def test_cli_export_json_and_human_output(single_binary, tmp_path, run_cli):
    pytest.importorskip("onnxruntime")
    artifact = tmp_path / "art"
    single_binary.save(artifact)
    check = tmp_path / "check.csv"
    raw_rows(n=250, seed=6).to_csv(check, index=False)
    out = tmp_path / "out" / "m.onnx"
    done = run_cli("export", artifact, "--format", "onnx", "-o", out, "--check", check, "--json")
    assert done.code == 0, done.err
    summary = json.loads(done.out)
    assert summary["path"] == str(out) and summary["format"] == "onnx"
    assert summary["rows"] == 250 and summary["max_abs_diff"] <= TOL
    assert (tmp_path / "out" / "m.onnx.json").exists()
    assert oct(os.stat(summary["path"]).st_mode & 0o777) == oct(0o644)
    done = run_cli("export", artifact, "-f", "torchscript", "--rows", "200")
    assert done.code == 0, done.err
    assert done.out == "" and "max abs diff" in done.err
    assert (tmp_path / "art.pt").exists() and (tmp_path / "art.pt.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    short = tmp_path / "short.csv"
    raw_rows(n=20, seed=7).drop(columns=[single_binary.schema.features[0].name]).to_csv(short, index=False)
    done = run_cli("export", artifact, "-o", tmp_path / "x.onnx", "--check", short)
    assert done.code == 1 and done.err.startswith(f"error: {short} lacks column(s)") and "the DataFrame" not in done.err


def test_a_text_only_model_is_pointed_to_serving_not_to_dropping_its_only_column(tmp_path):
    from test_text import reviews

    frame = reviews(60, 1)
    predictor = deepmine.fit(frame, target="sentiment", **{"trainer.epochs": 1, "report.enabled": False})
    with pytest.raises(ExportError, match=r"reads only text column\(s\) \('review'\).*deepmine serve") as err:
        export_predictor(predictor, tmp_path / "m.onnx", "onnx")
    assert "columns.drop" not in str(err.value) and not list(tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["tagger", "recommender", "forecaster", "sequence"])
def test_export_report_and_serve_name_another_kind_and_the_kinds_they_take(kind, tmp_path, run_cli):
    artifact = tmp_path / "model"
    artifact.mkdir()
    (artifact / "deepmine.json").write_text(json.dumps({"kind": kind, "format_version": 1}))
    write_checksums(artifact, ["deepmine.json"])  # an intact artifact of another kind
    article = "an" if kind[0] in "aeiou" else "a"
    for command in ("export", "report", "serve"):
        done = run_cli(command, artifact)
        assert done.code == 1 and len(done.err.strip().splitlines()) == 1
        assert done.err.startswith(
            f"error: artifact '{artifact}' is {article} {kind} model; `deepmine {command}` supports table and image "
            "models only"
        ), done.err
    assert sorted(p.name for p in artifact.iterdir()) == ["checksum.sha256", "deepmine.json"]  # nothing written
