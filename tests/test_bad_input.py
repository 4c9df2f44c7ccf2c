"""Bad input through the CLI: one clear line on stderr, the right exit code, and nothing left behind."""

from __future__ import annotations

import hashlib
import json
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, make_table

from deepmine.exceptions import SourceNotFoundError

N_ROWS = 80


def write(tmp_path: Path, name: str, frame: pd.DataFrame, **kwargs) -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False, **kwargs)
    return path


def assert_error(result, code: int, *parts: str) -> str:
    """Exit ``code``, nothing on stdout, exactly one ``error: `` line on stderr naming every part."""
    assert result.code == code, result
    assert "Traceback" not in result.err
    assert result.out == ""
    assert result.err.endswith("\n") and result.err.count("\n") == 1, result.err
    line = result.err.rstrip("\n")
    assert line.startswith("error: "), line
    for part in parts:
        assert part in line, (part, line)
    return line


def assert_no_leftovers(tmp_path: Path, *outputs: Path) -> None:
    """No output was written and no hidden temporary folder or file was left in ``tmp_path``."""
    for output in outputs:
        assert not output.exists(), output
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == []


def fit_fails(run_cli, tmp_path: Path, data: Path | str, *args: object, code: int = 1, parts=()) -> str:
    out = tmp_path / "model"
    result = run_cli("fit", data, "--out", out, *args, *FAST)
    line = assert_error(result, code, *parts)
    assert_no_leftovers(tmp_path, out)
    return line


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One small binary model shared by the predict/evaluate/artifact tests (fitted once through the CLI)."""
    from deepmine.cli import main

    root = tmp_path_factory.mktemp("trained")
    data = write(root, "train.csv", make_table(120, seed=0))
    out = root / "model"
    try:
        main(["fit", str(data), "--target", "label", "--out", str(out), "--json", *FAST])
    except SystemExit as done:
        pytest.fail(f"fitting the shared model exited with {done.code}")
    return out


@pytest.fixture
def new_rows() -> pd.DataFrame:
    """Unlabelled rows to predict, with every training column."""
    return make_table(30, seed=1).drop(columns=["label"])


@pytest.fixture
def artifact_copy(trained, tmp_path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    return copy


# ---- 1. missing file -------------------------------------------------------------------------------
def test_missing_file(run_cli, tmp_path):
    missing = tmp_path / "nope.csv"
    fit_fails(run_cli, tmp_path, missing, "--target", "label", parts=(str(missing), "does not exist"))


# ---- 2. empty and whitespace-only files -------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"  \n\n \t \r\n"], ids=["zero-bytes", "whitespace-only"])
def test_empty_file(run_cli, tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    fit_fails(run_cli, tmp_path, path, "--target", "label", parts=(str(path), "empty"))


# ---- 3. header only -----------------------------------------------------------------------------------
def test_header_only(run_cli, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("age,color,label\n", encoding="utf-8")
    fit_fails(run_cli, tmp_path, path, "--target", "label", parts=(str(path), "no data rows"))


# ---- 4. unknown target column -------------------------------------------------------------------------
def test_unknown_target_suggests_closest(run_cli, tmp_path):
    data = write(tmp_path, "t.csv", make_table(N_ROWS))
    fit_fails(run_cli, tmp_path, data, "--target", "lable", parts=("'lable'", str(data), "did you mean 'label'"))


# ---- 5. single-class target ---------------------------------------------------------------------------
def test_single_class_target(run_cli, tmp_path):
    frame = make_table(N_ROWS)
    frame["label"] = "yes"
    data = write(tmp_path, "one.csv", frame)
    fit_fails(
        run_cli, tmp_path, data, "--target", "label", parts=("'label'", str(data), "single value 'yes'", "two classes")
    )


# ---- 6. all-NaN target -------------------------------------------------------------------------------
def test_all_missing_target(run_cli, tmp_path):
    frame = make_table(N_ROWS)
    frame["label"] = np.nan
    data = write(tmp_path, "nolabel.csv", frame)
    fit_fails(
        run_cli, tmp_path, data, "--target", "label", parts=("'label'", str(data), f"all {N_ROWS} rows are missing")
    )


# ---- 7. non-UTF-8 bytes -------------------------------------------------------------------------------
@pytest.fixture
def latin1_csv(tmp_path) -> Path:
    frame = make_table(N_ROWS)
    frame["color"] = frame["color"].replace({"red": "rouge café"})
    path = write(tmp_path, "latin1.csv", frame, encoding="latin-1")
    assert "é".encode("latin-1") in path.read_bytes()
    return path


def test_latin1_read_as_utf8_is_a_clear_error(run_cli, tmp_path, latin1_csv):
    line = fit_fails(
        run_cli,
        tmp_path,
        latin1_csv,
        "--target",
        "label",
        "--encoding",
        "utf-8",
        parts=(str(latin1_csv), "utf-8", "--encoding"),
    )
    assert "0xe9" in line  # the byte latin-1 uses for 'é'


def test_latin1_is_sniffed_when_no_encoding_given(run_cli, latin1_csv):
    result = run_cli("profile", latin1_csv, "--json")
    assert result.code == 0, result.err
    profile = json.loads(result.out)
    color = next(c for c in profile["columns"] if c["name"] == "color")
    assert "rouge café" in color["stats"]["top"]


# ---- 8. ragged rows -----------------------------------------------------------------------------------
def test_ragged_row_names_file_and_line(run_cli, tmp_path):
    data = write(tmp_path, "ragged.csv", make_table(N_ROWS))
    lines = data.read_text(encoding="utf-8").splitlines()
    lines[6] += ",surplus"  # the 7th line of the file: a row with one field more than the header
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fit_fails(run_cli, tmp_path, data, "--target", "label", parts=(str(data), "line 7", "9 fields", "has 8"))


# ---- 9. NaN and inf in numeric columns ----------------------------------------------------------------
def test_nan_is_imputed_but_inf_is_an_error(run_cli, tmp_path):
    frame = make_table(N_ROWS)
    frame.loc[[3, 17, 40], "income"] = np.nan
    nan_data = write(tmp_path, "nan.csv", frame)
    out = tmp_path / "nan-model"
    fitted = run_cli("fit", nan_data, "--target", "label", "--out", out, "--json", *FAST)
    assert fitted.code == 0, fitted.err
    assert (out / "deepmine.json").exists()

    frame.loc[5, "income"] = np.inf
    inf_data = write(tmp_path, "inf.csv", frame)
    inf_out = tmp_path / "inf-model"
    failed = run_cli("fit", inf_data, "--target", "label", "--out", inf_out, *FAST)
    assert_error(failed, 1, "'income'", "infinite", "preprocess.infinite=missing")
    assert not inf_out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    fixed = run_cli(
        "fit", inf_data, "--target", "label", "--out", inf_out, "--json", *FAST, "--set", "preprocess.infinite=missing"
    )
    assert fixed.code == 0, fixed.err
    predicted = run_cli("predict", inf_out, inf_data)  # the artifact keeps treating inf as missing
    assert predicted.code == 0, predicted.err
    assert len(pd.read_csv(StringIO(predicted.out))) == N_ROWS


# ---- 10. a training column missing at predict time ----------------------------------------------------
def test_predict_data_missing_a_training_column(run_cli, tmp_path, trained, new_rows):
    data = write(tmp_path, "nocolor.csv", new_rows.drop(columns=["color"]))
    preds = tmp_path / "preds.csv"
    result = run_cli("predict", trained, data, "-o", preds)
    assert_error(result, 1, str(data), "'color'")
    assert_no_leftovers(tmp_path, preds)


def test_a_word_in_a_numeric_column_at_predict_time_names_file_row_and_value(run_cli, tmp_path, trained, new_rows):
    rows = new_rows.astype({"income": object})
    rows.loc[21, "income"] = "unknown"
    data = write(tmp_path, "late.csv", rows)
    preds = tmp_path / "preds.csv"
    result = run_cli("predict", trained, data, "-o", preds, "--chunk-rows", "8")  # the bad row in the third chunk
    line = assert_error(result, 1, str(data), "'income'", "row 22 holds 'unknown'", "trained on numbers")
    assert "--set" not in line  # a trained model's roles cannot change: only fixing the value helps
    assert_no_leftovers(tmp_path, preds)


# ---- 11. extra columns at predict time ----------------------------------------------------------------
def test_extra_predict_columns_warn_and_are_ignored(run_cli, tmp_path, trained, new_rows):
    plain = write(tmp_path, "plain.csv", new_rows)
    extra = write(tmp_path, "extra.csv", new_rows.assign(surplus_col=np.arange(len(new_rows))))
    expected = run_cli("predict", trained, plain)
    assert expected.code == 0, expected.err
    assert expected.err == ""
    result = run_cli("predict", trained, extra)
    assert result.code == 0, result.err
    assert result.err.count("\n") == 1 and result.err.startswith("warning: "), result.err
    assert "surplus_col" in result.err and str(extra) in result.err
    assert result.out == expected.out
    explained = run_cli("explain", trained, extra, "--rows", "2", "--json")  # checks the rows twice: warns once
    assert explained.code == 0, explained.err
    assert [line for line in explained.err.splitlines() if "surplus_col" in line] == [result.err.strip()]


# ---- 12. unseen categories at predict time ------------------------------------------------------------
def test_unseen_categories_map_to_unknown(run_cli, tmp_path, trained, new_rows):
    rows = new_rows.copy()
    rows.loc[::3, "color"] = "ultraviolet"
    rows.loc[1::4, "member"] = "maybe"
    data = write(tmp_path, "unseen.csv", rows)
    preds = tmp_path / "preds.csv"
    result = run_cli("predict", trained, data, "-o", preds, "--id", "customer_id")
    assert result.code == 0, result.err
    assert "error" not in result.err and "Traceback" not in result.err
    out = pd.read_csv(preds)
    assert len(out) == len(rows)
    assert out["customer_id"].tolist() == rows["customer_id"].tolist()
    assert out["prediction"].notna().all() and set(out["prediction"]) <= {"yes", "no"}


# ---- 13. unknown --set key ----------------------------------------------------------------------------
def test_unknown_set_key_suggests_closest(run_cli, tmp_path):
    data = write(tmp_path, "t.csv", make_table(N_ROWS))
    # the learning rate lives in the optimizer section, so the closest real key is optimizer.lr
    fit_fails(
        run_cli,
        tmp_path,
        data,
        "--target",
        "label",
        "--set",
        "trainer.lrr=0.1",
        code=2,
        parts=("'trainer.lrr'", "did you mean 'optimizer.lr'"),
    )
    fit_fails(
        run_cli,
        tmp_path,
        data,
        "--target",
        "label",
        "--set",
        "trainer.epoch=3",
        code=2,
        parts=("'trainer.epoch'", "did you mean 'trainer.epochs'"),
    )


# ---- artifacts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["weights.safetensors", "deepmine.json"])
def test_tampered_artifact_fails_checksum(run_cli, tmp_path, artifact_copy, name):
    target = artifact_copy / name
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    data = write(tmp_path, "test.csv", make_table(40, seed=2))
    result = run_cli("evaluate", artifact_copy, data)
    assert_error(result, 1, str(artifact_copy), name, "checksum")


def test_newer_format_version_is_refused(run_cli, tmp_path, artifact_copy):
    manifest_path = artifact_copy / "deepmine.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format_version"] = 999
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    digest = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    checksum_path = artifact_copy / "checksum.sha256"
    lines = [
        f"{digest}  deepmine.json" if line.endswith("  deepmine.json") else line
        for line in checksum_path.read_text(encoding="utf-8").splitlines()
    ]
    checksum_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = write(tmp_path, "test.csv", make_table(40, seed=2))
    result = run_cli("evaluate", artifact_copy, data)
    line = assert_error(result, 1, str(artifact_copy), "999", "newer")
    assert "checksum" not in line


# ---- --debug ------------------------------------------------------------------------------------------
def test_debug_shows_the_traceback(run_cli, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(SourceNotFoundError, match="nope.csv") as caught:
        run_cli("--debug", "fit", missing, "--target", "label", "--out", tmp_path / "model")
    assert len(caught.traceback) > 1  # the exception propagated from inside deepmine, with its traceback
    assert not (tmp_path / "model").exists()


# ---- rows without a target at evaluate time -----------------------------------------------------------
def test_evaluate_says_how_many_rows_lacked_the_target(run_cli, tmp_path, trained):
    rows = make_table(30, seed=2)
    rows.loc[[3, 7, 11], "label"] = np.nan
    data = write(tmp_path, "holes.csv", rows)
    result = run_cli("evaluate", trained, data, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["rows"] == 27
    assert result.err.startswith("warning: ") and "leaving out 3 of 30 row(s)" in result.err and "'label'" in result.err


def test_evaluate_names_a_bad_value_by_its_row_in_the_file_after_rows_without_a_target(run_cli, tmp_path, trained):
    rows = make_table(30, seed=2)
    rows["age"] = rows["age"].astype(object)
    rows.loc[[1, 2], "label"] = np.nan  # left out before the features are read: later rows keep their number
    rows.loc[9, "age"] = "old"
    result = run_cli("evaluate", trained, write(tmp_path, "holes.csv", rows))
    assert result.code == 1 and "Traceback" not in result.err
    assert "leaving out 2 of 30 row(s)" in result.err
    assert "holes.csv: column 'age' should hold numbers but row 10 holds 'old'" in result.err


def test_a_bad_value_in_the_valid_file_names_that_file(run_cli, tmp_path):
    train = write(tmp_path, "tr.csv", make_table(N_ROWS))
    rows = make_table(30, seed=3)
    rows["age"] = rows["age"].astype(object)
    rows.loc[4, "age"] = "old"
    out = tmp_path / "m"
    args = ["--valid", write(tmp_path, "va.csv", rows), "--out", out, "--no-track", "--set", "trainer.epochs=1"]
    result = run_cli("fit", train, "--target", "label", *args)
    assert result.code == 1 and "Traceback" not in result.err
    assert "va.csv: column 'age' should hold numbers but row 5 holds 'old'" in result.err
    assert not out.exists()


# ---- a transformer whose heads do not divide the width --------------------------------------------------
def test_transformer_heads_that_do_not_divide_the_width_are_a_usage_error(run_cli, tmp_path):
    data = write(tmp_path, "t.csv", make_table(N_ROWS))
    out = tmp_path / "model"
    settings = ["--set", "text.encoder=transformer", "--set", "text.heads=3"]
    result = run_cli("fit", data, "--target", "label", "--out", out, *settings)
    assert_error(result, 2, "text.heads (3) must divide text.embedding_dim (64)", "text.heads=2")
    assert "Value error" not in result.err and not out.exists()


# ---- a validation split too small to mean anything ------------------------------------------------------
def test_a_tiny_validation_split_is_called_unreliable(run_cli, tmp_path):
    data = write(tmp_path, "five.csv", make_table(N_ROWS).head(12))
    result = run_cli("fit", data, "--target", "label", "--out", tmp_path / "m", *FAST)
    assert result.code == 0, result.err
    assert "the validation split holds only 2 row(s); its metrics and early stopping are unreliable" in result.err
    bigger = run_cli(
        "fit", write(tmp_path, "all.csv", make_table(N_ROWS)), "--target", "label", "--out", tmp_path / "n", *FAST
    )
    assert bigger.code == 0 and "unreliable" not in bigger.err


def test_out_never_replaces_a_file_or_a_folder_of_the_users_own(run_cli, tmp_path, trained):
    data = write(tmp_path, "train.csv", make_table(n=N_ROWS))
    mine = tmp_path / "notes.csv"
    mine.write_text("keep me\n", encoding="utf-8")
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "q3.txt").write_text("keep me too\n", encoding="utf-8")
    result = run_cli("fit", data, "--target", "label", "--out", mine, *FAST)
    assert_error(result, 1, "'", "notes.csv' is a file", "--out")
    result = run_cli("fit", data, "--target", "label", "--out", folder, *FAST)
    assert_error(result, 1, "reports' is a folder with files that deepmine did not write")
    result = run_cli("recommend", data, "--out", folder, "--user", "a", "--item", "b")
    assert_error(result, 1, "reports' is a folder with files that deepmine did not write")
    assert mine.read_text(encoding="utf-8") == "keep me\n"
    assert [p.name for p in folder.iterdir()] == ["q3.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv", "reports", "train.csv"]  # nothing hidden
    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    result = run_cli("fit", data, "--target", "label", "--out", copy, "--json", *FAST)  # an artifact is replaced
    assert result.code == 0, result.err
    assert json.loads((copy / "deepmine.json").read_text())["training"]["source"] == str(data)


def test_command_line_mistakes_are_usage_errors_not_internal_ones(run_cli, tmp_path):
    for args, says in [
        (("fit", tmp_path / "x.csv", "--bogus"), "No such option: --bogus"),
        (("anomalies",), "Missing argument"),
        (("fit", tmp_path / "x.csv", "--task", "seqence"), "(did you mean 'sequence'?); choose from auto, binary"),
    ]:
        result = run_cli(*args)
        assert result.code == 2, result
        assert says in result.err and "internal error" not in result.err and "Traceback" not in result.err


def test_an_output_file_that_names_a_folder_is_a_usage_error(run_cli, tmp_path, trained, new_rows):
    data = write(tmp_path, "rows.csv", new_rows)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n", encoding="utf-8")
    for args in (("predict", trained, data), ("export", trained), ("report", trained)):
        result = run_cli(*args, "-o", folder)
        assert_error(result, 2, "results' is a folder; give a file path")
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "rows.csv"]  # no temporary file left


def test_a_word_in_a_regression_target_at_evaluate_names_file_row_and_value(run_cli, tmp_path):
    data = write(tmp_path, "train.csv", make_table(n=N_ROWS, task="regression"))
    out = tmp_path / "reg"
    fitted = run_cli("fit", data, "--target", "label", "--out", out, "--json", *FAST, "--set", "trainer.epochs=2")
    assert fitted.code == 0, fitted.err
    rows = make_table(n=20, seed=3, task="regression").astype({"label": object})
    rows.loc[6, "label"] = "lots"
    test = write(tmp_path, "test.csv", rows)
    for command in ("evaluate", "explain"):
        line = assert_error(run_cli(command, out, test), 1, f"{test}: column 'label'", "row 7 holds 'lots'")
        assert "--set" not in line  # the model's target stays numeric: only fixing the value helps


def test_an_encoding_that_cannot_read_the_file_and_an_unwritable_output_are_one_line(run_cli, tmp_path):
    data = write(tmp_path, "table.csv", make_table(40))
    assert_error(run_cli("profile", data, "--encoding", "utf-16"), 1, "table.csv", "utf-16", "--encoding")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be\n", encoding="utf-8")
    assert_error(run_cli("profile", data, "--html", blocker / "profile.html"), 1, "not-a-folder' is a file where a")
    line = assert_error(run_cli("profile", data, "--html", "/proc/profile.html"), 1, "'/proc/profile.html'")
    assert ".tmp" not in line  # the file the user named, not its temporary twin
    assert blocker.read_text(encoding="utf-8") == "a file where a folder should be\n"
