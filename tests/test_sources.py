"""Reading tables: delimiter/header/encoding sniffing, compressed and columnar files, SQL URLs, DataFrames."""

from __future__ import annotations

import gzip
import io
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, make_table, recorded_run

from deepmine.config import DataConfig
from deepmine.data.sources import load_table
from deepmine.exceptions import DataError, SourceNotFoundError

ROWS = [
    ("alice", 31, 1.5, "red"),
    ("bob", 45, 2.25, "blue"),
    ("carol", 27, 3.0, "green"),
    ("dave", 52, 4.75, "red"),
]
COLUMNS = ["name", "age", "height", "color"]
EXPECTED = pd.DataFrame(ROWS, columns=COLUMNS)


def delimited(sep: str, header: bool = True) -> str:
    lines = [sep.join(COLUMNS)] if header else []
    lines += [sep.join(str(v) for v in row) for row in ROWS]
    return "\n".join(lines) + "\n"


def assert_expected(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == COLUMNS
    assert frame["name"].tolist() == EXPECTED["name"].tolist()
    assert frame["age"].tolist() == EXPECTED["age"].tolist()
    assert frame["height"].tolist() == EXPECTED["height"].tolist()
    assert frame["color"].tolist() == EXPECTED["color"].tolist()


# ---- delimited text ---------------------------------------------------------------------------
@pytest.mark.parametrize("sep", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"])
def test_delimiter_is_sniffed(tmp_path, sep):
    path = tmp_path / "people.csv"
    path.write_text(delimited(sep), encoding="utf-8")
    assert_expected(load_table(path))


def test_tsv_file(tmp_path):
    path = tmp_path / "people.tsv"
    path.write_text(delimited("\t"), encoding="utf-8")
    assert_expected(load_table(path))


def test_sep_override_wins_over_sniffing(tmp_path):
    # Semicolon-separated values whose fields contain commas: the forced ';' must be used.
    path = tmp_path / "places.csv"
    path.write_text(
        "place;population\nParis, France;2100000\nLyon, France;520000\nNice, France;340000\n", encoding="utf-8"
    )
    frame = load_table(path, DataConfig(sep=";"))
    assert list(frame.columns) == ["place", "population"]
    assert frame["place"].tolist() == ["Paris, France", "Lyon, France", "Nice, France"]
    # Forcing a delimiter that is not in the file gives one column holding whole lines.
    whole = load_table(path, DataConfig(sep="|"))
    assert whole.shape[1] == 1


def test_header_present_is_sniffed(tmp_path):
    path = tmp_path / "with_header.csv"
    path.write_text(delimited(","), encoding="utf-8")
    frame = load_table(path)
    assert len(frame) == len(ROWS)  # the names row is not data
    assert "name" in frame.columns


def test_headerless_numeric_file_gets_column_names(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("1,2.5,3\n4,5.5,6\n7,8.5,9\n", encoding="utf-8")
    frame = load_table(path)
    assert list(frame.columns) == ["column_1", "column_2", "column_3"]
    assert len(frame) == 3  # the first row is data, not a header
    assert frame["column_1"].tolist() == [1, 4, 7]
    assert frame["column_2"].tolist() == [2.5, 5.5, 8.5]


def test_header_false_override_keeps_first_row_as_data(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(delimited(",", header=False), encoding="utf-8")
    frame = load_table(path, DataConfig(header=False))
    assert list(frame.columns) == ["column_1", "column_2", "column_3", "column_4"]
    assert len(frame) == len(ROWS)
    assert frame["column_1"].tolist() == EXPECTED["name"].tolist()
    # The same file with a header forced on loses its first row to column names.
    forced = load_table(path, DataConfig(header=True))
    assert len(forced) == len(ROWS) - 1 and list(forced.columns)[0] == "alice"


def test_a_header_with_a_blank_name_such_as_a_pandas_index_is_still_a_header(tmp_path):
    path = tmp_path / "indexed.csv"
    make_table(30).to_csv(path)  # pandas writes the index under an empty name: ",customer_id,age,..."
    frame = load_table(path)
    assert len(frame) == 30 and list(frame.columns[1:]) == list(make_table(30).columns)
    headerless = tmp_path / "headerless.csv"  # a blank cell in a first data row is no header
    headerless.write_text("alice,,london\nbob,34,paris\ncarol,28,rome\n", encoding="utf-8")
    assert load_table(headerless).shape == (3, 3)


def test_a_header_with_a_repeated_name_is_an_error_naming_it(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,age,job,age,income\n1,39,clerk,77516,low\n2,50,chef,83311,high\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"duplicate column names \['age'\] in its header") as err:
        load_table(path)
    assert "dup.csv" in str(err.value)
    headerless = load_table(path, DataConfig(header=False))  # the way out the message names
    assert headerless.shape == (3, 5) and headerless.iloc[0].tolist()[:2] == ["id", "age"]


def test_utf8_bom_is_not_part_of_first_column_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "city,temp\nMünchen,12\nKöln,14\n".encode())
    frame = load_table(path)
    assert list(frame.columns) == ["city", "temp"]
    assert frame["city"].tolist() == ["München", "Köln"]


@pytest.mark.parametrize(
    "text",
    [
        "city,temp\nMünchen,12\nKöln,14\nDüsseldorf,13\nNürnberg,11\nZürich,10\n",
        "name,city,score\nJosé,Málaga,1\nRenée,Zürich,2\nFrançois,Besançon,3\nÅsa,Göteborg,4\n",
    ],
    ids=["german", "mixed"],
)
def test_latin1_file_is_sniffed_and_decoded(tmp_path, text):
    path = tmp_path / "latin.csv"
    path.write_bytes(text.encode("latin-1"))
    frame = load_table(path)
    expected = pd.read_csv(io.StringIO(text))
    assert list(frame.columns) == list(expected.columns)
    first = expected.columns[0]
    assert frame[first].tolist() == expected[first].tolist()


def test_wrong_encoding_override_is_a_clear_error(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("city,temp\nMünchen,12\nKöln,14\n".encode("latin-1"))
    with pytest.raises(DataError, match="encoding"):
        load_table(path, DataConfig(encoding="utf-8"))


def test_gzip_compressed_csv(tmp_path):
    path = tmp_path / "people.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(delimited(";"))
    assert_expected(load_table(path))


@pytest.mark.parametrize("name", ["people.csv.bz2", "people.csv.xz", "people.csv.zip", "PEOPLE.CSV.GZ"])
def test_every_compression_pandas_reads_is_sniffed_decompressed(tmp_path, name):
    path = tmp_path / name
    EXPECTED.to_csv(path, index=False, sep=";", compression={"method": "infer"} if name.islower() else "gzip")
    assert_expected(load_table(path))


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_a_plain_csv_named_as_an_archive_is_a_one_line_error(tmp_path, suffix):
    path = tmp_path / f"people.csv{suffix}"
    path.write_text(delimited(","))
    with pytest.raises(DataError, match=rf"'{path}' is named \{suffix} but is not a valid \{suffix} archive"):
        load_table(path)


def test_a_database_or_parquet_file_read_as_text_says_what_it_is_and_how_to_read_it(tmp_path, run_cli):
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as con:
        EXPECTED.to_sql("people", con, index=False)
    result = run_cli("fit", database, "--target", "color")
    assert result.code == 1 and result.err.count("\n") == 1, result.err
    assert f"'{database}' is a SQLite database" in result.err and f"sqlite:///{database} --table" in result.err
    assert "encoding" not in result.err
    misnamed = tmp_path / "people.dat"
    EXPECTED.to_parquet(misnamed, index=False)
    with pytest.raises(DataError, match="is a Parquet file; name it with a .parquet suffix"):
        load_table(misnamed)


def test_parquet(tmp_path):
    path = tmp_path / "people.parquet"
    EXPECTED.to_parquet(path, index=False)
    assert_expected(load_table(path))


def test_json_lines(tmp_path):
    path = tmp_path / "people.jsonl"
    EXPECTED.to_json(path, orient="records", lines=True)
    assert_expected(load_table(path))


def test_every_format_reads_the_missing_value_markers_alike(tmp_path):
    frame = pd.DataFrame({"job": ["clerk", "?", "NA", "chef"], "age": [30, 41, 25, 52]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    url = make_db(tmp_path / "t.db", {"t": frame})
    for source in [tmp_path / "t.csv", tmp_path / "t.parquet", tmp_path / "t.jsonl", url]:
        read = load_table(source)
        assert read["job"].isna().tolist() == [False, True, True, False], source
    assert load_table(frame)["job"].tolist() == ["clerk", "?", "NA", "chef"]  # a DataFrame is taken as given
    from deepmine.data.streaming import ChunkReader

    for path in (tmp_path / "t.parquet", tmp_path / "t.csv"):  # and so do the streamed chunks of big files
        streamed = pd.concat([chunk for _, chunk in ChunkReader(path, DataConfig()).chunks()])
        assert streamed["job"].isna().tolist() == [False, True, True, False], path


def test_json_lines_errors_name_the_line(tmp_path):
    good = '{"a": 1, "b": "x"}\n'
    cases = {
        "truncated": (good * 3 + '{"a": 2, "b"\n', "line 4: Expecting"),
        "array": (good * 2 + "[1, 2, 3]\n", "line 3 holds a JSON list, not an object"),
        "nested": (good + '{"a": {"x": 1}, "b": "y"}\n', "line 2: field 'a' holds a nested dict"),
    }
    for name, (text, says) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError) as err:
            load_table(path)
        assert says in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value), name


def test_matlab_files_read_as_columns(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(12, 3)), (np.arange(12) % 4 == 0).astype(float)
    savemat(tmp_path / "set.mat", {"X": features, "y": labels[None, :], "note": "odds-like"})  # y a row vector
    read = load_table(tmp_path / "set.mat")
    assert list(read.columns) == ["X_1", "X_2", "X_3", "y"]
    np.testing.assert_allclose(read[["X_1", "X_2", "X_3"]].to_numpy(), features)
    assert read["y"].tolist() == [1, 0, 0, 0] * 3 and read["y"].dtype == "int64"  # doubles that are labels
    (tmp_path / "fake.mat").write_bytes(b"not a matlab file at all" * 10)
    with pytest.raises(DataError, match="could not be read as a MATLAB file"):
        load_table(tmp_path / "fake.mat")


# ---- SQL -------------------------------------------------------------------------------------
def make_db(path, tables: dict[str, pd.DataFrame]) -> str:
    with sqlite3.connect(path) as conn:
        for name, frame in tables.items():
            frame.to_sql(name, conn, index=False)
    conn.close()
    return f"sqlite:///{path}"


def test_sqlite_table_query_and_single_table_default(tmp_path):
    others = pd.DataFrame({"sku": ["a1", "b2"], "price": [9.5, 3.0]})
    url = make_db(tmp_path / "shop.db", {"people": EXPECTED, "products": others})
    assert_expected(load_table(url, DataConfig(table="people")))
    products = load_table(url, DataConfig(table="products"))
    assert products["sku"].tolist() == ["a1", "b2"]

    queried = load_table(url, DataConfig(query="SELECT name, age FROM people WHERE age > 30 ORDER BY age"))
    assert list(queried.columns) == ["name", "age"]
    assert queried["name"].tolist() == ["alice", "bob", "dave"]

    # Two tables and no choice: a clear error listing them.
    with pytest.raises(DataError, match="--table") as err:
        load_table(url)
    assert "people" in str(err.value) and "products" in str(err.value)

    single = make_db(tmp_path / "single.db", {"people": EXPECTED})
    assert_expected(load_table(single))


def test_a_bad_query_is_one_line_naming_the_database_error(tmp_path):
    url = make_db(tmp_path / "shop.db", {"people": EXPECTED})
    with pytest.raises(DataError) as err:
        load_table(url, DataConfig(query="SELEC * FROM people"))
    message = str(err.value)
    assert "syntax error" in message and "SELEC" in message and "\n" not in message and "sqlalche.me" not in message


def test_table_and_query_together_are_refused_not_one_ignored(tmp_path):
    url = make_db(tmp_path / "shop.db", {"people": EXPECTED})
    with pytest.raises(DataError, match="both --table 'people' and --query were given"):
        load_table(url, DataConfig(table="people", query="SELECT name FROM people WHERE age > 30"))


@pytest.mark.filterwarnings("ignore:Query string argument")  # pysqlite ignores the password the URL carries
def test_a_query_or_table_with_no_rows_names_it_and_the_masked_database(tmp_path):
    url = make_db(tmp_path / "shop.db", {"people": EXPECTED, "empty": EXPECTED.head(0)}) + "?password=hunter2"
    shown = f"sqlite:///{tmp_path / 'shop.db'}?password=***"
    query = "SELECT name FROM people WHERE age > 100"
    with pytest.raises(DataError) as err:
        load_table(url, DataConfig(query=query))
    assert str(err.value).startswith(f"query '{query}' on database '{shown}' returned no rows; check the query")
    with pytest.raises(DataError) as err:
        load_table(url, DataConfig(table="empty"))
    assert str(err.value).startswith(f"table 'empty' on database '{shown}' returned no rows; add rows")
    assert "hunter2" not in str(err.value) and "header" not in str(err.value)


@pytest.mark.parametrize(
    "command",
    [["profile"], ["fit", "--target", "color", "--no-track"], ["predict", "no-model"], ["cluster"], ["recommend"]],
)
def test_table_or_query_with_a_file_source_is_refused_not_ignored(tmp_path, run_cli, command, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a fit that ignored --table would write its model here
    path = tmp_path / "people.csv"
    EXPECTED.to_csv(path, index=False)
    result = run_cli(*command, path, "--table", "people")
    assert result.code == 1 and result.err.count("\n") == 1, result.err
    assert f"--table 'people' applies only to database sources, but '{path}' is a file" in result.err
    assert list(tmp_path.iterdir()) == [path]
    both = run_cli(*command, path, "--table", "people", "--query", "SELECT name FROM people")
    assert both.code == 1 and "--table 'people' and --query apply only to database sources" in both.err
    missing = run_cli(*command, tmp_path / "nosuch.csv", "--table", "people")  # not called a file: it is not there
    assert missing.code == 1 and "does not exist" in missing.err and "is a file" not in missing.err, missing.err


def test_table_with_a_sqlite_file_path_says_to_pass_its_url(tmp_path, run_cli):
    database = tmp_path / "shop.db"
    make_db(database, {"people": EXPECTED})
    result = run_cli("profile", database, "--table", "people")
    assert result.code == 1 and result.err.count("\n") == 1, result.err
    assert f"'{database}' is a SQLite database; pass its URL, sqlite:///{database}, with --table 'people'" in result.err
    assert run_cli("profile", f"sqlite:///{database}", "--table", "people", "--json").code == 0


def test_sqlite_wrong_table_suggests_closest(tmp_path):
    url = make_db(tmp_path / "shop.db", {"customers": EXPECTED, "orders": EXPECTED})
    with pytest.raises(DataError, match="did you mean 'customers'"):
        load_table(url, DataConfig(table="customer"))


def test_missing_sqlite_file_is_a_clear_error_and_not_created(tmp_path):
    db = tmp_path / "nope.db"
    with pytest.raises(SourceNotFoundError, match="does not exist") as err:
        load_table(f"sqlite:///{db}", DataConfig(table="t"))
    assert str(db) in str(err.value)
    assert not db.exists()
    assert isinstance(err.value, FileNotFoundError)


# ---- DataFrames ------------------------------------------------------------------------------
def test_dataframe_is_copied_not_mutated():
    frame = pd.DataFrame({" padded ": [1, 2, 3], "b": ["x", "y", "z"]})
    before = frame.copy()
    loaded = load_table(frame)
    assert list(loaded.columns) == ["padded", "b"]  # names are stripped on the copy ...
    assert list(frame.columns) == [" padded ", "b"]  # ... not on the caller's frame
    loaded.loc[0, "b"] = "changed"
    loaded["new"] = 0
    pd.testing.assert_frame_equal(frame, before)
    assert loaded is not frame


# ---- end to end through the CLI ----------------------------------------------------------------
def test_cli_fit_from_sqlite_matches_fit_from_csv(run_cli, tmp_path):
    table = make_table(n=160, seed=3)
    csv_path = tmp_path / "table.csv"
    table.to_csv(csv_path, index=False)
    url = make_db(tmp_path / "table.db", {"t": table, "other": table.head(5)})

    csv_model, sql_model = tmp_path / "csv-model", tmp_path / "sql-model"
    fit_csv = run_cli("fit", csv_path, "--target", "label", "--out", csv_model, "--seed", 7, *FAST)
    assert fit_csv.code == 0, fit_csv.err
    fit_sql = run_cli("fit", url, "--table", "t", "--target", "label", "--out", sql_model, "--seed", 7, *FAST)
    assert fit_sql.code == 0, fit_sql.err

    from_csv = run_cli("predict", csv_model, csv_path)
    assert from_csv.code == 0, from_csv.err
    from_sql = run_cli("predict", sql_model, url, "--table", "t")
    assert from_sql.code == 0, from_sql.err
    preds_csv = pd.read_csv(io.StringIO(from_csv.out))
    preds_sql = pd.read_csv(io.StringIO(from_sql.out))
    assert len(preds_sql) == len(table)
    assert preds_sql["prediction"].tolist() == preds_csv["prediction"].tolist()
    np.testing.assert_allclose(
        preds_sql[["proba_no", "proba_yes"]], preds_csv[["proba_no", "proba_yes"]], rtol=0, atol=1e-6
    )
    # the model learned something, so equality is not two constant outputs
    assert (preds_sql["prediction"] == table["label"]).mean() > 0.7


def test_leading_comment_lines_are_skipped(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("|1x3 Cross validator\n# exported 2026-01-01\nage,color\n30,red\n41,blue\n")
    frame = load_table(path)
    assert list(frame.columns) == ["age", "color"] and frame["age"].tolist() == [30, 41]


def test_pipe_delimited_rows_are_not_mistaken_for_comments(tmp_path):
    path = tmp_path / "pipes.txt"
    path.write_text("|1|x|\n|2|y|\n|3|z|\n")
    frame = load_table(path)
    assert len(frame) == 3 and frame["column_2"].tolist() == [1, 2, 3]


# ---- passwords in URLs -------------------------------------------------------------------------
SECRET_URL = "postgresql://bob:hunter2@127.0.0.1:notaport/shop"


def test_redact_url_masks_only_the_password():
    from deepmine.urls import redact_url

    assert redact_url("postgresql+psycopg2://bob:s3cr%40t@db:5432/shop?sslmode=require") == (
        "postgresql+psycopg2://bob:***@db:5432/shop?sslmode=require"
    )
    assert redact_url("https://ann:tok@mlflow.example.com/") == "https://ann:***@mlflow.example.com/"
    for unchanged in ("sqlite:////tmp/shop.db", "http://ann@host/x", "data/train.csv", "a@b.csv", "sqlite:////a@b.db"):
        assert redact_url(unchanged) == unchanged
    # unescaped '#', '/' or '?' in a password (SQLAlchemy reads them) and query-string passwords
    assert redact_url("postgresql://u:p#s/s?x@h/db") == "postgresql://u:***@h/db"
    assert redact_url("mssql://h/db?user=u&password=hunter2&x=1") == "mssql://h/db?user=u&password=***&x=1"
    from deepmine.urls import redact_in

    quoted = "API request to https://ann:tok3n@h:5000/api/2.0 failed (tok3n rejected)"
    assert (
        redact_in(quoted, "https://ann:tok3n@h:5000")
        == "API request to https://ann:***@h:5000/api/2.0 failed (*** rejected)"
    )


def test_bad_database_url_error_never_shows_the_password(run_cli, tmp_path):
    with pytest.raises(DataError) as err:
        load_table(SECRET_URL, DataConfig(table="t"))
    assert "hunter2" not in str(err.value) and "bob:***@127.0.0.1" in str(err.value)

    result = run_cli("fit", SECRET_URL, "--table", "t", "--target", "label", "--out", tmp_path / "model")
    assert result.code != 0
    assert "hunter2" not in result.err + result.out and "bob:***@" in result.err
    assert not (tmp_path / "model").exists()


def test_saved_artifact_and_tracked_params_never_hold_the_tracking_password(tmp_path):
    from deepmine.artifact import MANIFEST
    from deepmine.config import build_config
    from deepmine.tasks.supervised import fit_table
    from deepmine.tracking import Tracker, flatten

    uri = "http://bob:hunter2@127.0.0.1:9/"
    settings = {"columns.target": "label", "trainer.epochs": 2, "model.hidden": [8], "report.enabled": False}
    config = build_config(None, {**settings, "tracking.enabled": False, "tracking.uri": uri})
    assert config.tracking.uri == uri  # the run itself still reaches the server
    predictor = fit_table(make_table(n=80), config)
    artifact = predictor.save(tmp_path / "model")
    files = [p for p in artifact.rglob("*") if p.is_file()]
    assert files and not any(b"hunter2" in p.read_bytes() for p in files)
    manifest = json.loads((artifact / MANIFEST).read_text())
    assert manifest["config"]["tracking"]["uri"] == "http://bob:***@127.0.0.1:9/"
    assert flatten(config.model_dump(mode="json"))["tracking.uri"] == "http://bob:***@127.0.0.1:9/"

    from deepmine.config import RunConfig
    from deepmine.exceptions import DeepmineWarning
    from deepmine.tracking import start
    from deepmine.urls import redact_url

    rebuilt = build_config(RunConfig(tracking={"uri": uri}), {"optimizer.lr": 0.01})
    assert rebuilt.tracking.uri == uri  # only JSON dumps mask it: a config built from a config keeps the password
    reloaded = build_config(None, {"tracking.uri": manifest["config"]["tracking"]["uri"]})
    with pytest.warns(DeepmineWarning, match=r"holds a masked password .*--tracking-uri"):
        assert start(reloaded) is None  # a masked URI read back from an artifact is not tried for minutes
    query_masked = build_config(None, {"tracking.uri": redact_url("http://127.0.0.1:9/?user=bob&password=hunter2")})
    with pytest.warns(DeepmineWarning, match=r"holds a masked password"):
        assert start(query_masked) is None  # masked as a password= query value too

    run_id = Tracker(None, "deepmine").record(predictor, source=SECRET_URL, artifact=artifact)
    run = recorded_run(run_id)
    assert run["tags"]["deepmine.source"] == "postgresql://bob:***@127.0.0.1:notaport/shop"
    assert run["status"] == "FINISHED"


def test_blank_lines_of_a_one_column_file_are_empty_values_and_predictions_stay_aligned(tmp_path):
    one = tmp_path / "texts.csv"
    one.write_text("text\nterrible awful movie\n   \n\ngreat wonderful film\n", encoding="utf-8")
    frame = load_table(one)
    assert frame["text"].tolist()[0] == "terrible awful movie" and len(frame) == 4
    assert frame["text"].isna().tolist() == [False, True, True, False]
    for name, text in (("lead.csv", "\ntext\nhello\n\nworld\n"), ("note.csv", "# exported\n\ntext\nhello\n\nworld\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")  # blank lines before the header are not rows
        assert load_table(tmp_path / name)["text"].tolist()[::2] == ["hello", "world"]
        assert load_table(tmp_path / name)["text"].isna().tolist() == [False, True, False]
    wide = tmp_path / "wide.csv"
    wide.write_text("a,b\n1,2\n\n   \n3,4\n", encoding="utf-8")  # in a wider file a blank line is a stray line
    assert load_table(wide).to_dict("list") == {"a": [1, 3], "b": [2, 4]}


def test_prose_full_of_commas_in_a_tab_separated_file_is_read_by_tabs(tmp_path):
    rng = np.random.default_rng(0)
    words = ["good", "bad", "plot", "actors", "however", "and", "then", "the", "film"]
    texts = [
        f'{" ".join(rng.choice(words, 4))}, "{rng.choice(words)}", {", ".join(rng.choice(words, rng.integers(1, 6)))}'
        for _ in range(40)
    ]  # quoted words followed by commas, as in reviews, which fooled csv.Sniffer into ','
    frame = pd.DataFrame({"text": texts, "label": rng.choice(["pos", "neg"], 40)})
    lines = ["text\tlabel", *(f"{t}\t{y}" for t, y in zip(frame["text"], frame["label"], strict=True))]
    for name in ("reviews.tsv", "reviews.txt"):  # by the rows' fields, whatever the file is called
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        pd.testing.assert_frame_equal(load_table(path), frame)
    quoted = tmp_path / "quoted.csv"  # commas inside quoted fields still leave a comma-separated file
    frame.to_csv(quoted, index=False)
    pd.testing.assert_frame_equal(load_table(quoted), frame)
