"""`deepmine predict` streams CSV inputs in chunks: same output as the whole table, atomic on error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, make_table

from deepmine.artifact import load_predictor
from deepmine.data.sources import iter_csv_chunks, load_table
from deepmine.exceptions import DataError

CHUNK = 37  # rows per chunk: the inputs below span several chunks and end with a partial one


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from deepmine.cli import main

    root = tmp_path_factory.mktemp("streaming")
    data = root / "train.csv"
    make_table(120, seed=0).to_csv(data, index=False)
    out = root / "model"
    try:
        main(["fit", str(data), "--target", "label", "--out", str(out), "--json", *FAST, "--set", "model.ensemble=1"])
    except SystemExit as done:
        pytest.fail(f"fitting the shared model exited with {done.code}")
    return out


@pytest.fixture
def big_csv(tmp_path) -> Path:
    """200 rows (more than 5 chunks) with missing values and unseen categories."""
    frame = make_table(200, seed=3).drop(columns=["label"])
    frame.loc[::17, "color"] = "ultraviolet"
    frame.loc[::13, "income"] = np.nan
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    return path


def assert_no_hidden_files(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def write_whole(frame: pd.DataFrame, path: Path) -> None:
    """How `deepmine predict` wrote the whole table before it streamed."""
    name = path.name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_chunked_output_equals_the_whole_table_path(run_cli, trained, big_csv, tmp_path, suffix):
    chunked, whole = tmp_path / f"chunked.{suffix}", tmp_path / f"whole.{suffix}"
    result = run_cli("predict", trained, big_csv, "-o", chunked, "--id", "customer_id", "--chunk-rows", CHUNK)
    assert result.code == 0, result.err
    assert "wrote 200 predictions" in result.err
    write_whole(load_predictor(trained).predict_frame(big_csv, "customer_id"), whole)
    if suffix == "parquet":
        pd.testing.assert_frame_equal(pd.read_parquet(chunked), pd.read_parquet(whole))
    else:
        assert chunked.read_bytes() == whole.read_bytes()
    assert_no_hidden_files(tmp_path)


def test_chunked_stdout_equals_whole(run_cli, trained, big_csv):
    chunked = run_cli("predict", trained, big_csv, "--chunk-rows", CHUNK)
    whole = run_cli("predict", trained, big_csv)
    assert chunked.code == whole.code == 0, chunked.err
    assert chunked.out == whole.out and chunked.out.count("\n") == 201
    assert chunked.err == ""  # no progress bar, warning or message when stderr is not a terminal


def test_gzip_input_streams_too(run_cli, trained, big_csv, tmp_path):
    packed = tmp_path / "big.csv.gz"
    packed.write_bytes(gzip.compress(big_csv.read_bytes()))
    assert run_cli("predict", trained, packed, "--chunk-rows", CHUNK).out == run_cli("predict", trained, big_csv).out


def test_extra_columns_warn_once(run_cli, trained, big_csv, tmp_path):
    extra = tmp_path / "extra.csv"
    pd.read_csv(big_csv).assign(surplus=1).to_csv(extra, index=False)
    result = run_cli("predict", trained, extra, "--chunk-rows", CHUNK)
    assert result.code == 0, result.err
    assert result.err.count("warning: ") == 1 and "surplus" in result.err


def test_unreadable_dates_in_several_chunks_are_missing_with_one_warning_counting_all(
    run_cli, trained, big_csv, tmp_path
):
    frame = pd.read_csv(big_csv)
    bad, blanked = tmp_path / "bad-dates.csv", tmp_path / "blank-dates.csv"
    rows = [3, 100, 150]  # in the first, third and fifth chunks
    frame.loc[60, "joined"] = " "  # blank: missing already, not counted
    frame.assign(joined=frame["joined"].mask(frame.index.isin(rows), "")).to_csv(blanked, index=False)
    frame.loc[rows, "joined"] = ["someday", "2021-02-30", "n/a yet"]
    frame.to_csv(bad, index=False)
    result = run_cli("predict", trained, bad, "--chunk-rows", CHUNK)
    assert result.code == 0, result.err
    assert result.err.count("warning: ") == 1, result.err
    assert f"{bad}: 3 value(s) of column 'joined' could not be read as dates (for example 'someday')" in result.err
    assert result.out == run_cli("predict", trained, blanked, "--chunk-rows", CHUNK).out  # read as missing


def test_a_bad_value_in_a_later_chunk_leaves_nothing_behind(run_cli, trained, big_csv, tmp_path):
    frame = pd.read_csv(big_csv).astype({"age": object})
    frame.loc[150, "age"] = "not-a-number"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "preds.csv"
    out.write_text("previous predictions\n")
    result = run_cli("predict", trained, bad, "-o", out, "--chunk-rows", CHUNK)
    assert result.code == 1 and result.err.startswith("error: ") and "'age'" in result.err, result.err
    assert "not-a-number" in result.err
    assert out.read_text() == "previous predictions\n"  # untouched: the new file was never renamed into place
    assert_no_hidden_files(tmp_path)
    printed = run_cli("predict", trained, bad, "--chunk-rows", CHUNK)  # stdout cannot be taken back: say so
    assert printed.code == 1 and printed.out.count("\n") == 1 + 4 * CHUNK, printed.out[-200:]
    assert f"({4 * CHUNK} predictions were already printed; -o FILE writes all rows or nothing)" in printed.err


def test_header_only_file_is_an_error(run_cli, trained, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("customer_id,age,income,color,member,joined,note\n")
    result = run_cli("predict", trained, path, "--chunk-rows", CHUNK)
    assert result.code == 1 and "no data rows" in result.err


def test_bad_chunk_size_is_a_usage_error(run_cli, trained, big_csv):
    result = run_cli("predict", trained, big_csv, "--chunk-rows", 0)
    assert result.code == 2 and "--chunk-rows" in result.err


def test_chunks_are_bounded_and_concatenate_to_the_table(big_csv):
    seen = []
    chunks = list(iter_csv_chunks(big_csv, chunk_rows=CHUNK, on_progress=lambda done, total: seen.append(done)))
    assert [len(c) for c in chunks] == [CHUNK] * 5 + [200 - 5 * CHUNK]
    whole = load_table(big_csv)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole, check_dtype=False)
    assert seen == sorted(seen) and seen[-1] == big_csv.stat().st_size


def test_chunk_reader_reports_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        next(iter_csv_chunks(tmp_path / "nope.csv"))


def test_leading_comment_lines_are_skipped_in_every_chunk_reader(run_cli, trained, big_csv, tmp_path):
    commented = tmp_path / "commented.csv"
    commented.write_text("# exported by a tool\n# another note\n" + big_csv.read_text())
    chunked = run_cli("predict", trained, commented, "--chunk-rows", CHUNK)
    assert chunked.code == 0, chunked.err
    assert chunked.out == run_cli("predict", trained, big_csv).out


def test_the_input_file_as_output_is_refused_before_predicting(run_cli, trained, big_csv):
    before = big_csv.read_bytes()
    result = run_cli("predict", trained, big_csv, "-o", big_csv)
    assert result.code == 2 and "is the input file" in result.err and "big-predictions.csv" in result.err, result.err
    assert big_csv.read_bytes() == before
    assert_no_hidden_files(big_csv.parent)


@pytest.mark.parametrize("name", ["preds.xlsx", "preds.json", "preds", "preds.parquet.gz"])
def test_an_output_name_of_no_table_format_is_a_usage_error(run_cli, trained, big_csv, tmp_path, name):
    result = run_cli("predict", trained, big_csv, "-o", tmp_path / name)
    assert result.code == 2 and ".csv, .tsv, .parquet or .jsonl" in result.err, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_gzip_output_names_are_compressed(run_cli, trained, big_csv, tmp_path, suffix):
    plain, packed = tmp_path / f"p.{suffix}", tmp_path / f"p.{suffix}.gz"
    assert run_cli("predict", trained, big_csv, "-o", plain, "--chunk-rows", CHUNK).code == 0
    result = run_cli("predict", trained, big_csv, "-o", packed, "--chunk-rows", CHUNK)
    assert result.code == 0, result.err
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()


def test_an_id_column_named_like_an_output_column_is_refused(run_cli, trained, big_csv, tmp_path):
    clash = tmp_path / "clash.csv"
    pd.read_csv(big_csv).rename(columns={"customer_id": "prediction"}).to_csv(clash, index=False)
    result = run_cli("predict", trained, clash, "--id", "prediction")
    assert result.code == 1 and "id column 'prediction'" in result.err and "rename" in result.err, result.err


@pytest.mark.parametrize("source", ["csv", "parquet"])
@pytest.mark.parametrize("id_column", ["ref", "color"])  # a column the model ignores, and one of its inputs
def test_ids_are_echoed_as_written_while_inputs_read_missing_words(run_cli, trained, tmp_path, source, id_column):
    frame = make_table(80, seed=5).drop(columns=["label"])
    frame["ref"] = (["NA", "N/A", "null", "?", "007", "", "US", "NaN"] * 10)[:80]
    frame.loc[::3, "color"] = "NA"  # a missing-value word in an input column
    path = tmp_path / f"rows.{source}"
    frame.to_csv(path, index=False) if source == "csv" else frame.to_parquet(path, index=False)
    with_id, without = tmp_path / "with.csv", tmp_path / "without.csv"
    assert run_cli("predict", trained, path, "-o", with_id, "--id", id_column, "--chunk-rows", CHUNK).code == 0
    assert run_cli("predict", trained, path, "-o", without, "--chunk-rows", CHUNK).code == 0
    echoed = pd.read_csv(with_id, dtype=str, keep_default_na=False)
    assert echoed[id_column].tolist() == frame[id_column].tolist()  # 'NA', '007' ... as in the file
    scored = pd.read_csv(without)
    pd.testing.assert_frame_equal(pd.read_csv(with_id).drop(columns=[id_column]), scored)  # inputs read as before
