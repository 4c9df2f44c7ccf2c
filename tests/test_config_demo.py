"""Config from YAML and --set, and the bundled demo."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from deepmine.config import RunConfig, build_config, parse_override


def test_set_overrides_parse_yaml_values():
    config = build_config(
        None,
        dict(parse_override(s) for s in ["model.hidden=[64, 32]", "optimizer.lr=3e-3", "trainer.early_stopping=false"]),
    )
    assert config.model.hidden == [64, 32]
    assert config.optimizer.lr == pytest.approx(0.003)
    assert config.trainer.early_stopping is False


def test_module_prefix_is_an_alias_of_model():
    assert build_config(None, {"module.dropout": 0.4}).model.dropout == 0.4


def test_invalid_value_names_the_field():
    with pytest.raises(ValueError, match=r"trainer\.epochs.*greater than or equal to 1"):
        build_config(None, {"trainer.epochs": 0})


def test_yaml_config_file_and_cli_set_precedence(tmp_path, run_cli, table_csv):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("columns: {target: label}\nmodel: {hidden: [8]}\ntrainer: {epochs: 2, batch_size: 64}\n")
    assert build_config(config_file).model.hidden == [8]
    out = tmp_path / "model"
    result = run_cli("fit", table_csv, "--config", config_file, "--set", "trainer.epochs=3", "--out", out, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["epochs"] == 3
    saved = RunConfig.model_validate(json.loads((out / "deepmine.json").read_text())["config"])
    assert saved.model.hidden == [8] and saved.trainer.batch_size == 64 and saved.columns.target == "label"


def test_missing_config_file_is_a_usage_error(run_cli, table_csv, tmp_path):
    result = run_cli("fit", table_csv, "--target", "label", "--config", tmp_path / "nope.yaml")
    assert result.code == 2
    assert "nope.yaml" in result.err and result.err.count("\n") == 1


def test_config_file_encoding_and_syntax_errors_are_one_line_with_the_place(run_cli, table_csv, tmp_path):
    utf16 = tmp_path / "utf16.yaml"  # Windows editors save UTF-16 with a byte-order mark
    utf16.write_bytes("tracking: {experiment: café}\n".encode("utf-16"))
    assert build_config(utf16).tracking.experiment == "café"
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("tracking: {experiment: café}\n".encode("latin-1"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("trainer:\n  epochs: 1\n bad: [\n")
    expected = {
        latin1: "not UTF-8 text (byte 0xe9 at offset 26)",
        broken: "at line 3, column 2",
        tmp_path: "is a folder; pass a YAML file",
    }
    for path, message in expected.items():
        result = run_cli("fit", table_csv, "--target", "label", "--config", path)
        assert result.code == 2, result.err
        assert message in result.err and str(path.name) in result.err and result.err.count("\n") == 1, result.err


def test_a_section_is_a_mapping_an_empty_one_is_allowed_and_a_scalar_one_is_named(run_cli, table_csv, tmp_path):
    empty = tmp_path / "empty.yaml"  # every key of a section commented out leaves `trainer:` holding null
    empty.write_text("trainer:\n  # epochs: 40\nmodel: {hidden: [8]}\n")
    assert build_config(empty).trainer.epochs == RunConfig().trainer.epochs
    assert build_config(empty).model.hidden == [8]
    assert build_config(None, dict([parse_override("trainer={epochs: 3}")])).trainer.epochs == 3
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("trainer: 3\n")
    for args in (["--config", scalar], ["--set", "trainer=3"]):
        result = run_cli("fit", table_csv, "--target", "label", *args)
        assert result.code == 2, result.err
        assert "'trainer' is a section, not a setting (got 3)" in result.err, result.err
        assert "--set trainer.epochs=" in result.err and "did you mean" not in result.err


def test_demo_runs_the_whole_workflow(run_cli, tmp_path):
    result = run_cli("demo", "--out", tmp_path / "demo", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["accuracy"] > 0.9 and summary["roc_auc"] > 0.95
    predictions = pd.read_csv(summary["predictions"])
    test_rows = pd.read_csv(tmp_path / "demo" / "data" / "test.csv")
    assert len(predictions) == len(test_rows)
    assert predictions["patient_id"].tolist() == test_rows["patient_id"].tolist()
    assert (tmp_path / "demo" / "model" / "weights.safetensors").exists()
    assert "Model card" in (tmp_path / "demo" / "model" / "report.html").read_text()


def test_optimizer_settings_are_reachable_under_trainer():
    config = build_config(None, {"trainer.lr": 0.003, "trainer.optimizer": "rmsprop"})
    assert config.optimizer.lr == pytest.approx(0.003) and config.optimizer.name == "rmsprop"
