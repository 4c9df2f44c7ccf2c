"""The artifact folder: safe formats only, atomic writes, loading in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_table
from safetensors.torch import load_file

import deepmine
from deepmine.artifact import CHECKSUM, INSIGHT, MANIFEST, WEIGHTS

SMALL = {"model.hidden": [16], "trainer.batch_size": 32, "trainer.epochs": 5}
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("artifact") / "model"
    frame = make_table(n=200)
    predictor = deepmine.fit(frame, target="label", **SMALL)
    predictor.save(folder)
    return folder, predictor, frame


def test_artifact_holds_only_json_and_safetensors(saved):
    folder, _, _ = saved
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, WEIGHTS, CHECKSUM, INSIGHT])  # all JSON
    for path in folder.rglob("*"):
        head = path.read_bytes()[:2]
        assert head not in PICKLE_MAGIC, path
        assert not path.name.endswith((".pkl", ".pickle", ".pt", ".pth", ".joblib"))
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["format_version"] == 1
    assert {"versions", "config", "schema", "pipeline", "metrics", "history"} <= set(manifest)
    assert manifest["versions"]["torch"] and manifest["config"]["columns"]["target"] == "label"
    assert load_file(str(folder / WEIGHTS))  # a real safetensors file


def test_load_in_a_fresh_process_predicts_the_same(saved, tmp_path):
    folder, predictor, frame = saved
    data = tmp_path / "rows.csv"
    frame.to_csv(data, index=False)
    code = (
        "import json, sys, deepmine; p = deepmine.load(sys.argv[1]); "
        "print(json.dumps(p.predict_proba(sys.argv[2]).tolist()))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(folder), str(data)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fresh = np.array(json.loads(done.stdout))
    np.testing.assert_allclose(fresh, predictor.predict_proba(data), rtol=0, atol=1e-6)


def test_failed_save_leaves_the_old_artifact_untouched(saved, monkeypatch, tmp_path):
    folder, predictor, _ = saved
    before = (folder / CHECKSUM).read_text()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("deepmine.artifact.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        predictor.save(folder)
    assert (folder / CHECKSUM).read_text() == before
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(OSError):
        predictor.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_regression_artifact_roundtrip(tmp_path):
    frame = make_table(n=300, task="regression")
    predictor = deepmine.fit(frame, target="label", **{**SMALL, "trainer.epochs": 30})
    assert predictor.task == "regression"
    predictor.save(tmp_path / "reg")
    loaded = deepmine.load(tmp_path / "reg")
    np.testing.assert_allclose(loaded.predict(frame), predictor.predict(frame), rtol=1e-6)
    metrics = loaded.evaluate(frame)
    assert set(metrics) >= {"rmse", "mae", "r2"}
    assert metrics["r2"] > 0.5  # the label is a noisy linear function of the inputs


def test_multiclass_probabilities(tmp_path):
    frame = make_table(n=300, task="multiclass")
    predictor = deepmine.fit(frame, target="label", **{**SMALL, "trainer.epochs": 20})
    assert predictor.task == "multiclass" and list(predictor.classes_) == ["high", "low", "mid"]
    proba = predictor.predict_proba(frame)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(predictor.predict(frame)) <= {"high", "low", "mid"}
    assert predictor.evaluate(frame)["accuracy"] > 0.6


def test_incomplete_preprocessing_state_is_refused(saved, tmp_path):
    import hashlib
    import shutil

    folder, _, _ = saved
    copy = tmp_path / "old"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    for state in manifest["pipeline"]["numeric"].values():
        state.pop("knots_x", None)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    lines = [f"{hashlib.sha256((copy / n).read_bytes()).hexdigest()}  {n}" for n in (MANIFEST, WEIGHTS)]
    (copy / CHECKSUM).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"lacks \['knots_x'\].*re-create it"):
        deepmine.load(copy)
