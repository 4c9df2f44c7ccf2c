"""Schema inference (roles, task), `deepmine profile`, and the per-role preprocessors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import make_table

from deepmine.config import PreprocessConfig, build_config
from deepmine.data.schema import infer_role, infer_schema, infer_task
from deepmine.exceptions import ConfigError, DataError
from deepmine.features.categorical import MISSING, UNKNOWN, CategoricalEncoder
from deepmine.features.datetime import DatetimeEncoder, UnreadableDates, date_parts
from deepmine.features.numeric import NumericEncoder
from deepmine.features.pipeline import FeaturePipeline

N = 40


def role_columns() -> dict[str, object]:
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "great", "slow", "fast"]
    return {
        "height": rng.normal(170, 10, N),
        "color": rng.choice(["red", "green", "blue"], N),
        "member": rng.choice(["yes", "no"], N),
        "note": [" ".join(rng.choice(words, 5)) for _ in range(N)],
        "joined": pd.date_range("2021-01-01", periods=N, freq="D").strftime("%Y-%m-%d"),
        "customer_id": np.arange(100, 100 + N),
        "code": [f"K{v:05d}" for v in rng.permutation(99999)[:N]],
        "const": ["x"] * N,
        "empty": [np.nan] * N,
    }


# ---- roles -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("height", "numeric"),
        ("color", "categorical"),
        ("member", "binary"),
        ("note", "text"),
        ("joined", "datetime"),
        ("customer_id", "id"),
        ("code", "id"),
        ("const", "constant"),
        ("empty", "constant"),
    ],
)
def test_role_inference_with_reason(name, role):
    got, reason, _ = infer_role(pd.Series(role_columns()[name]), name)
    assert got == role
    assert isinstance(reason, str) and reason.strip()


def test_reasons_describe_the_evidence():
    cols = role_columns()
    assert "missing" in infer_role(pd.Series(cols["empty"]), "empty")[1]
    assert "'x'" in infer_role(pd.Series(cols["const"]), "const")[1]
    assert "3 distinct" in infer_role(pd.Series(cols["color"]), "color")[1]


def test_unique_integers_without_id_name_or_steps_are_numeric():
    # Unique integers that are neither named like an id nor evenly spaced are measurements, not ids.
    values = pd.Series(np.random.default_rng(1).choice(10_000, N, replace=False))
    assert infer_role(values, "count")[0] == "numeric"


def test_schema_skips_target_and_lists_features():
    frame = pd.DataFrame(role_columns())
    frame["label"] = np.where(frame["height"] > 170, "tall", "short")
    schema = infer_schema(frame, "label")
    assert [c.name for c in schema.columns] == list(role_columns())
    assert {c.name for c in schema.features} == {"height", "color", "member", "note", "joined"}
    assert schema.classes == ["short", "tall"]


# ---- task --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["yes", "no", "no", "yes", "no"], "binary"),
        ([0, 1, 1, 0, 1], "binary"),
        (["low", "mid", "high", "mid", "low"], "multiclass"),
        ([0, 1, 2, 1, 2], "multiclass"),
        ([0.5, 1.25, 2.75, 3.5, 0.1], "regression"),
    ],
)
def test_task_inference(values, task):
    got, reason = infer_task(pd.Series(values), "y")
    assert got == task and reason


def test_many_distinct_integers_are_regression():
    assert infer_task(pd.Series(np.arange(50)), "y")[0] == "regression"


def test_forced_task():
    frame = make_table(n=60)
    assert infer_schema(frame, "label").task == "binary"
    schema = infer_schema(frame, "label", task="multiclass")
    assert schema.task == "multiclass" and schema.task_reason == "set in the config"
    assert schema.classes == ["no", "yes"]
    with pytest.raises(DataError, match="regression needs a numeric target"):
        infer_schema(frame, "label", task="regression")
    with pytest.raises(ConfigError, match="did you mean 'binary'"):
        infer_schema(frame, "label", task="binari")


def test_labels_differing_only_by_surrounding_spaces_are_one_class():
    # a trailing space on some labels ('pos ') made a third class that no row was encoded to
    frame = make_table(n=60)
    frame["label"] = [f"{v} " if i % 2 else v for i, v in enumerate(frame["label"])]
    schema = infer_schema(frame, "label")
    assert schema.task == "binary" and schema.classes == ["no", "yes"]
    pipeline = FeaturePipeline(schema, PreprocessConfig()).fit(frame)
    codes = pipeline.encode_target(frame)
    assert sorted(set(codes.tolist())) == [0, 1]
    assert (pipeline.decode_target(codes) == frame["label"].str.strip().to_numpy()).all()


def test_roles_override_via_config():
    frame = make_table(n=60)
    config = build_config(None, {"columns.roles.age": "categorical", "columns.roles.note": "constant"})
    schema = infer_schema(frame, "label", roles=config.columns.roles)
    roles = {c.name: c for c in schema.columns}
    assert roles["age"].role == "categorical" and roles["age"].reason == "set in the config"
    assert roles["note"].role == "constant"
    assert "note" not in [c.name for c in schema.features]
    assert roles["color"].role == "categorical" and roles["color"].reason != "set in the config"
    with pytest.raises(ConfigError, match="did you mean 'numeric'"):
        infer_schema(frame, "label", roles={"age": "numerc"})


# ---- deepmine profile ------------------------------------------------------------------------
def test_profile_json_contract(run_cli, table, table_csv):
    result = run_cli("profile", table_csv, "--target", "label", "--json")
    assert result.code == 0, result.err
    assert result.out.endswith("\n") and result.out.count("\n") == 1  # exactly one JSON line
    report = json.loads(result.out)
    assert isinstance(report, dict) and report["rows"] == len(table)
    columns = {c["name"]: c for c in report["columns"]}
    assert list(columns) == list(table.columns)
    for col in columns.values():
        assert {"role", "reason", "missing_share", "distinct", "stats"} <= set(col)
        assert col["reason"]
        assert 0.0 <= col["missing_share"] <= 1.0
    roles = {name: c["role"] for name, c in columns.items()}
    assert roles == {
        "customer_id": "id",
        "age": "numeric",
        "income": "numeric",
        "color": "categorical",
        "member": "binary",
        "joined": "datetime",
        "note": "text",
        "label": "target",
    }
    assert columns["age"]["missing_share"] == pytest.approx(table["age"].isna().mean())
    assert columns["color"]["distinct"] == table["color"].nunique()
    assert columns["age"]["stats"]["median"] == pytest.approx(table["age"].median())
    assert sum(columns["color"]["stats"]["top"].values()) == len(table)
    target = report["target"]
    assert target["task"] == "binary"
    assert set(target["balance"]) == {"yes", "no"}
    assert sum(target["balance"].values()) == pytest.approx(1.0)
    assert target["balance"]["yes"] == pytest.approx((table["label"] == "yes").mean(), abs=1e-6)


def test_profile_table_goes_to_stderr_only(run_cli, table_csv):
    result = run_cli("profile", table_csv, "--target", "label")
    assert result.code == 0, result.err
    assert result.out == ""
    for word in ("column", "role", "categorical", "datetime", "balance"):
        assert word in result.err


def test_profile_shows_integers_above_2_to_the_53_exactly(run_cli, tmp_path, monkeypatch):
    big, odd = 12345678901234567, 2**53 + 1  # neither is a float64: as floats they read ...568 and ...992
    frame = pd.DataFrame({"amount": np.array([7, odd, big, 7, odd, big] * 5, dtype="int64"), "y": [0, 1] * 15})
    frame.to_csv(tmp_path / "big.csv", index=False)
    result = run_cli("profile", tmp_path / "big.csv", "--json")
    assert result.code == 0, result.err
    stats = next(c for c in json.loads(result.out)["columns"] if c["name"] == "amount")["stats"]
    assert (stats["min"], stats["max"], stats["median"]) == (7, big, odd)
    assert all(isinstance(stats[k], int) for k in ("min", "max", "median"))
    monkeypatch.setenv("COLUMNS", "200")  # one line per column: the numbers are not folded
    text = run_cli("profile", tmp_path / "big.csv")
    assert text.code == 0, text.err
    assert f"min 7, max {big}, median {odd}" in text.err


def test_profile_unknown_target_is_an_error(run_cli, table_csv):
    result = run_cli("profile", table_csv, "--target", "lable", "--json")
    assert result.code == 1 and result.out == ""
    assert "did you mean 'label'" in result.err


def test_profile_names_the_weight_column_as_fit_does(run_cli, table, tmp_path):
    path = tmp_path / "weighted.csv"
    table.assign(w=np.linspace(0.5, 3.0, len(table))).to_csv(path, index=False)
    plain = run_cli("profile", path, "--target", "label", "--json")
    assert {c["name"]: c["role"] for c in json.loads(plain.out)["columns"]}["w"] == "numeric"
    roles_set = ["--set", "columns.weight=w", "--set", "columns.roles.age=categorical"]
    result = run_cli("profile", path, "--target", "label", *roles_set, "--json")
    assert result.code == 0, result.err
    roles = {c["name"]: c for c in json.loads(result.out)["columns"]}
    assert roles["w"]["role"] == "weight" and "row-weight column" in roles["w"]["reason"]
    assert roles["age"]["role"] == "categorical" and roles["label"]["role"] == "target"
    shown = run_cli("profile", path, "--set", "columns.weight=w")
    assert shown.code == 0 and " w " in shown.err and " weight " in shown.err, shown.err
    other = run_cli("profile", path, "--set", "trainer.epochs=3")
    assert other.code == 2 and other.err.count("\n") == 1 and "pass trainer.epochs to fit" in other.err
    unknown = run_cli("profile", path, "--set", "columns.weight=wt")
    assert unknown.code == 1 and "column 'wt' is not in" in unknown.err and "did you mean 'w'" in unknown.err
    assert "columns.weight=COL" in run_cli("profile", "--help").out


# ---- preprocessing units -----------------------------------------------------------------------
def test_numeric_encoder_imputes_training_median_with_flag():
    train = pd.Series([1.0, 2.0, np.nan, 3.0, 100.0], name="x")  # median of the finite values: 2.5
    encoder = NumericEncoder(scaling="standard").fit(train)
    assert encoder.median == 2.5 and encoder.flag_missing and encoder.width == 2
    other = pd.Series([np.nan, 2.5, 500.0, 500.0, 500.0], name="x")  # its own median would be 500
    out = encoder.transform(other)
    assert out.shape == (5, 2)
    assert out[0, 0] == out[1, 0]  # missing → the training median, not the new data's
    assert out[:, 1].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    expected = (2.5 - np.mean([1, 2, 3, 100])) / np.std([1, 2, 3, 100])
    assert out[0, 0] == pytest.approx(expected, rel=1e-5)


def test_numeric_encoder_without_missing_in_training_has_no_flag():
    encoder = NumericEncoder().fit(pd.Series([1.0, 2.0, 3.0, 4.0]))
    assert not encoder.flag_missing and encoder.width == 1
    out = encoder.transform(pd.Series([np.nan, 2.5]))
    assert out.shape == (2, 1) and out[0, 0] == out[1, 0]


def test_categorical_encoder_unknown_bucket_and_rare_folding():
    train = pd.Series(["a"] * 6 + ["b"] * 5 + ["r"] * 2 + [None])
    encoder = CategoricalEncoder(min_count=5).fit(train)
    assert encoder.categories == ["a", "b"]
    codes = encoder.transform(pd.Series(["a", "b", "r", "never-seen", None]))
    a, b, rare, unseen, missing = codes.tolist()
    assert rare == unseen == UNKNOWN
    assert missing == MISSING and missing != unseen
    assert len({a, b, UNKNOWN, MISSING}) == 4
    assert max(codes) < encoder.cardinality
    assert encoder.unseen(pd.Series(["a", "zzz", "r"])) == ["r", "zzz"]


def test_categorical_encoder_numbers_and_strings_agree():
    encoder = CategoricalEncoder(min_count=1).fit(pd.Series([3.0, 4.0, 3.0]))
    assert encoder.transform(pd.Series(["3", "4"])).tolist() == encoder.transform(pd.Series([3, 4])).tolist()


def test_datetime_parts():
    parts = date_parts(pd.Series(["2021-03-15 10:30:00", "2022-12-31", None]))
    first = parts.iloc[0]
    got = tuple(first[k] for k in ("year", "month", "day", "dayofweek", "hour"))
    assert got == (2021, 3, 15, 0, 10)  # 2021-03-15 was a Monday
    assert parts.iloc[1]["year"] == 2022 and parts.iloc[1]["dayofweek"] == 5  # a Saturday
    assert parts.iloc[1]["epoch_days"] > first["epoch_days"]
    assert parts.iloc[2].isna().all()


def test_dotted_dates_are_dates_read_day_first_and_version_strings_are_not():
    from deepmine.data.schema import infer_role

    dotted = pd.Series(["13.01.2020", "01.02.2020", "28.12.2021", None] * 10)
    assert infer_role(dotted, "signed")[0] == "datetime"
    parts = date_parts(dotted.head(2))
    assert parts[["year", "month", "day"]].to_numpy().tolist() == [[2020, 1, 13], [2020, 2, 1]]
    assert infer_role(pd.Series(["1.2.3", "2.0.1", "3.1.4"] * 10), "version")[0] == "categorical"
    alone = date_parts(pd.Series(["01.02.2020"]))  # one value alone, or beside ISO dates: still day first
    beside = date_parts(pd.Series(["2020-01-02", "01.02.2020"]))
    assert alone.iloc[0]["month"] == beside.iloc[1]["month"] == 2 and beside.iloc[0]["month"] == 1


def test_unreadable_dates_are_missing_with_one_warning_naming_count_example_and_column():
    encoder = DatetimeEncoder().fit(pd.Series(pd.date_range("2020-01-01", periods=30, freq="17D").astype(str)))
    given = pd.Series(["2020-02-01", "soon", None, "  ", "2020-02-30", "2021-06-01"], name="joined")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = encoder.transform(given, "new.csv")
    dated = [w for w in caught if issubclass(w.category, UnreadableDates)]
    assert len(dated) == 1  # blank and missing values were missing already: not counted
    assert str(dated[0].message).startswith(
        "new.csv: 2 value(s) of column 'joined' could not be read as dates (for example 'soon') and were treated as "
        "missing"
    )
    missing = encoder.transform(pd.Series([None] * 6, name="joined"))  # the encoding of an all-missing column
    np.testing.assert_array_equal(out[[1, 4]], missing[[1, 4]])  # the batch went on, bad values as missing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoder.transform(pd.Series(["2020-02-01", None, ""], name="joined"))
    assert not [w for w in caught if issubclass(w.category, UnreadableDates)]
    constant = DatetimeEncoder().fit(pd.Series(["2020-01-01"] * 5))  # no part varies: the column adds nothing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert constant.transform(pd.Series(["soon", "later"], name="joined")).shape == (2, 0)
    assert not [w for w in caught if issubclass(w.category, UnreadableDates)]  # nothing read, nothing to warn


def test_datetime_encoder_skips_constant_parts_and_keeps_order():
    dates = pd.Series(pd.date_range("2020-01-01", periods=30, freq="17D").strftime("%Y-%m-%d"))
    encoder = DatetimeEncoder().fit(dates)
    assert "hour" not in encoder.parts  # every training value is midnight
    assert {"year", "month", "day", "dayofweek", "epoch_days"} <= set(encoder.parts)
    out = encoder.transform(pd.Series(["2020-02-01", "2021-06-01"]))
    assert out.shape == (2, encoder.width)
    names = list(encoder.parts)
    epoch = names.index("epoch_days")
    assert out[1, epoch] > out[0, epoch]


def test_feature_pipeline_state_round_trips_through_json():
    frame = make_table(n=120, seed=5)
    schema = infer_schema(frame, "label")
    train, other = frame.iloc[:90].reset_index(drop=True), frame.iloc[90:].reset_index(drop=True)
    pipeline = FeaturePipeline(schema, PreprocessConfig(rare_min_count=2)).fit(train)
    text = json.dumps(pipeline.state())  # plain JSON, no numpy objects
    restored = FeaturePipeline.from_state(schema, json.loads(text))
    for data in (train, other):
        before, after = pipeline.transform(data), restored.transform(data)
        assert len(before.as_list()) == len(after.as_list()) == 3  # numeric, categorical, one text column
        for x, y in zip(before.as_list(), after.as_list(), strict=True):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(pipeline.encode_target(other), restored.encode_target(other))
    assert restored.cardinalities == pipeline.cardinalities
    assert restored.text_cardinalities == pipeline.text_cardinalities


def test_profile_table_clips_long_text_values_to_one_short_line(run_cli, tmp_path):
    long_review = "an unusually long review that goes on " * 20
    frame = pd.DataFrame({"review": [long_review] * 3 + ["short"] * 2, "y": [0, 1, 0, 1, 0]})
    frame.to_csv(tmp_path / "r.csv", index=False)
    result = run_cli("profile", tmp_path / "r.csv")
    assert result.code == 0, result.err
    # the value shows twice (why, statistics), each cut to 40 characters — not 20 repeats of the sentence
    assert result.err.count("unusually") == 2 and result.err.count("…") == 2


def test_a_numeric_column_with_a_few_missing_markers_stays_numeric_and_reads_them_as_missing(tmp_path):
    import deepmine
    from deepmine.data.schema import infer_role
    from deepmine.exceptions import DeepmineWarning

    rng = np.random.default_rng(0)
    income = rng.normal(50, 10, 200).round(3).astype(object)
    income[::40] = "-"
    role, reason, missing = infer_role(pd.Series(income), "income")
    assert (role, missing) == ("numeric", ["-"]) and "'-' read as missing" in reason
    rare = np.random.default_rng(1).normal(size=400).astype(object)
    rare[[5, 300]] = "-"  # 0.5 %: under the share that already counted as numbers
    assert infer_role(pd.Series(rare), "rare")[::2] == ("numeric", ["-"])
    codes = pd.Series(["A1", "B2", "C3"] * 10 + ["7"])  # words with digits are codes, not markers
    assert infer_role(codes, "code")[0] == "categorical"
    frame = pd.DataFrame({"income": income, "noise": rng.normal(size=200)})
    frame["label"] = np.where(pd.to_numeric(frame["income"], errors="coerce").fillna(50) > 50, "hi", "lo")
    with pytest.warns(DeepmineWarning, match="column 'income' of the DataFrame holds numbers and the word"):
        model = deepmine.fit(
            frame, "label", trainer={"epochs": 2}, report={"enabled": False}, tracking={"enabled": False}
        )
    assert model.pipeline.numeric["income"].missing == ["-"]
    from deepmine.profile import profile_table

    with pytest.warns(DeepmineWarning):
        profiled = {c["name"]: c for c in profile_table(frame)["columns"]}["income"]
    numbers = pd.to_numeric(frame["income"], errors="coerce")
    assert profiled["missing_share"] == pytest.approx(5 / 200) and profiled["distinct"] == numbers.nunique()
    model.save(tmp_path / "m")
    again = deepmine.load(tmp_path / "m")
    assert (again.predict(frame.head(50)) == model.predict(frame.head(50))).all()  # '-' rows predict too
