"""The tree member of table models: LightGBM trees held as tensors, blended with the network."""

from __future__ import annotations

import json
import sys

import lightgbm
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import deepmine
from deepmine.nn.trees import from_lightgbm, mix_log_probabilities, tree_inputs
from deepmine.tasks.tree_member import choose_weight

QUIET = {"report.enabled": False, "tracking.enabled": False}
FAST = {"trainer.epochs": 8, "model.hidden": [16], "model.ensemble": 1, **QUIET}


def _design(n: int, seed: int = 0, nan: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns (one with NaN unless ``nan`` is False, one mostly zero) and two integer 'code' columns."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, 3))
    numeric[(rng.random(n) < 0.2) & nan, 1] = np.nan
    numeric[rng.random(n) < 0.5, 2] = 0.0
    codes = rng.integers(0, 5, size=(n, 2)).astype("float64")
    return numeric, codes


@pytest.mark.parametrize(
    "objective, classes, nan",
    [("binary", 2, True), ("multiclass", 3, True), ("regression", 1, True), ("binary", 2, False)],
)
def test_tree_member_reproduces_lightgbm_raw_scores(objective, classes, nan):
    numeric, codes = _design(600, nan=nan)
    x = np.hstack([numeric, codes])
    signal = np.nan_to_num(numeric[:, 0]) + (codes[:, 0] > 2) - np.isnan(numeric[:, 1]) + numeric[:, 2]
    if objective == "regression":
        y = signal
    else:
        y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    params = {"objective": objective, "verbose": -1, "seed": 0, "num_leaves": 15}
    if objective == "multiclass":
        params["num_class"] = classes
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), 30)
    member = from_lightgbm(booster, classes).eval()
    test_numeric, test_codes = _design(300, seed=1)  # NaN in a column trained without: read as 0 (LightGBM too)
    test_numeric = test_numeric.astype("float32")  # model inputs are float32
    test_numeric[:20] = booster.dump_model()["tree_info"][0]["tree_structure"]["threshold"]  # ties decide alike
    expected = booster.predict(np.hstack([test_numeric.astype("float64"), test_codes]), raw_score=True)
    got = member.raw_scores(tree_inputs(torch.from_numpy(test_numeric), torch.from_numpy(test_codes)))
    np.testing.assert_allclose(got.numpy().reshape(expected.shape), expected, rtol=1e-9, atol=1e-9)
    assert bool(member.missing.any()) == nan  # splits with a missing-value rule, or the fast path
    trees, splits, leaves = member.paths.shape
    assert trees == 30 * (classes if classes > 2 else 1) and splits == leaves - 1 == 14


def _split_features(member: nn.Module) -> list[int]:
    """The design columns the member's real splits read (padding splits have no leaf on their path)."""
    real = member.paths.abs().sum(dim=-1) > 0
    return member.feature[real].unique().tolist()


def test_trees_grown_on_some_columns_read_those_columns_of_the_design():
    numeric, codes = _design(400)
    x = np.hstack([numeric, codes])
    columns = [1, 3]  # the NaN column and the first code
    y = (np.nan_to_num(numeric[:, 1]) + codes[:, 0] > 2).astype(int)
    booster = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(x[:, columns], y), 20)
    member = from_lightgbm(booster, 2, columns=columns).eval()
    assert set(_split_features(member)) == set(columns)
    design = tree_inputs(torch.from_numpy(numeric.astype("float32")), torch.from_numpy(codes))
    expected = booster.predict(design.numpy()[:, columns], raw_score=True)
    np.testing.assert_allclose(member.raw_scores(design).numpy()[:, 0], expected, rtol=1e-9, atol=1e-9)


def test_mixture_of_probabilities_is_a_weighted_mean():
    net, trees = torch.randn(5, 3), torch.randn(5, 3)
    for weight in (0.0, 0.3, 1.0):
        mixed = mix_log_probabilities(net, trees, weight).exp()
        expected = (1 - weight) * net.softmax(-1) + weight * trees.softmax(-1)
        torch.testing.assert_close(mixed, expected)


class _Oracle(nn.Module):
    """A 'network' that knows the labels of the validation rows: confident and right."""

    def __init__(self, labels: torch.Tensor) -> None:
        super().__init__()
        self.labels = labels

    def forward(self, *_inputs: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(self.labels, 2).float() * 20


def test_trees_get_no_weight_when_the_network_is_better():
    numeric, codes = _design(200)
    labels = torch.from_numpy((np.nan_to_num(numeric[:, 0]) > 0).astype("int64"))
    rows = lightgbm.Dataset(numeric[:, :1], labels.numpy())
    booster = lightgbm.train({"objective": "binary", "verbose": -1}, rows, 5)
    trees = from_lightgbm(booster, 2).eval()
    x = [torch.from_numpy(numeric[:, :1]).float(), torch.zeros((200, 0), dtype=torch.int64)]
    weight, losses = choose_weight(_Oracle(labels), trees, x, labels, "binary")
    assert weight == 0
    assert losses["0"] < losses["0.5"] < losses["0.8"] and "1" not in losses  # never the trees alone


def _interaction_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A label that is an interaction of a threshold and a category: what trees pick up at once."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(0, 10, n)
    shape = rng.choice(["round", "square", "star"], n)
    noise = rng.normal(size=n)
    label = np.where((size > 6) ^ (shape == "star"), "yes", "no")
    return pd.DataFrame({"size": size, "shape": shape, "noise": noise, "label": label})


@pytest.fixture(scope="module")
def blended():
    frame = _interaction_table()
    return frame, deepmine.fit(frame, target="label", **FAST)


def test_table_fit_blends_trees_chosen_on_validation(blended):
    frame, model = blended
    record = model.training["trees"]
    assert 0 < record["weight"] <= 0.8  # never the trees alone
    losses = record["valid_loss_by_weight"]
    assert record["weight"] == float(min(losses, key=losses.get))
    assert record["regrown_on_rows"] == len(frame)  # no --valid: the saved trees saw every row
    assert model.model_spec["trees"]["weight"] == record["weight"]
    pipeline = model.pipeline  # trees split on each number's value, not on its piecewise-linear bins
    assert min(pipeline.numeric_widths) > 1 and pipeline.tree_columns == [
        0,
        pipeline.numeric_widths[0],
        sum(pipeline.numeric_widths),
    ]
    assert set(_split_features(model.model.trees)) <= set(pipeline.tree_columns)
    test = _interaction_table(400, seed=1)
    accuracy = (model.predict(test.drop(columns="label")) == test["label"]).mean()
    assert accuracy > 0.95


def test_blended_artifact_is_safetensors_and_predicts_the_same(blended, tmp_path):
    frame, model = blended
    model.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("*.pkl"))
    weights = load_file(str(tmp_path / "m" / "weights.safetensors"))
    assert {"trees.threshold", "trees.feature", "trees.value"} <= set(weights)
    manifest = json.loads((tmp_path / "m" / "deepmine.json").read_text())
    assert manifest["format_version"] == 2  # older releases refuse it with "upgrade deepmine", not a TypeError
    spec = manifest["model"]["trees"]
    assert spec["trees"] == weights["trees.feature"].shape[0]
    again = deepmine.load(tmp_path / "m")
    rows = frame.drop(columns="label").head(50)
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))


def test_given_validation_file_is_not_trained_on():
    frame = _interaction_table()
    model = deepmine.fit(frame.iloc[:400], target="label", valid=frame.iloc[400:], **FAST)
    assert "regrown_on_rows" not in model.training["trees"]


def test_trees_off_and_text_tables_fit_the_network_alone():
    frame = _interaction_table(300)
    off = deepmine.fit(frame, target="label", **{**FAST, "model.trees": False})
    assert "trees" not in off.training and "trees" not in off.model_spec
    rng = np.random.default_rng(0)
    vocabulary = np.array(["quiet", "clean", "noisy", "room", "staff", "breakfast", "view", "small", "late"])
    mood = np.where(frame["label"] == "yes", "great", "awful")
    words = frame.assign(review=[f"{m} " + " ".join(rng.choice(vocabulary, 6)) for m in mood])
    text = deepmine.fit(words, target="label", **FAST)
    assert "trees" not in text.training
    with pytest.warns(UserWarning, match="model.trees=on is ignored: trees are not blended with text columns"):
        asked = deepmine.fit(words, target="label", **{**FAST, "model.trees": "on"})
    assert "trees" not in asked.model_spec


def test_auto_leaves_trees_out_of_wide_large_tables():
    from types import SimpleNamespace

    from deepmine.config import RunConfig
    from deepmine.tasks.tree_member import wants_trees

    auto, on = RunConfig(), RunConfig.model_validate({"model": {"trees": True}})
    pixels = SimpleNamespace(tree_columns=list(range(784)), text={})
    assert not wants_trees(auto, pixels, "multiclass", 10, rows=60_000)  # 470M cells: left to the network
    assert wants_trees(auto, pixels, "multiclass", 10, rows=300)  # a few hundred rows: cheap
    assert wants_trees(on, pixels, "multiclass", 10, rows=60_000)  # asked for
    assert not wants_trees(auto, pixels, "multilabel", 3, rows=300)


def test_trees_without_a_split_and_tiny_tables_still_fit():
    tiny = _interaction_table(36)  # under 40 training rows: LightGBM cannot split (20 rows per leaf)
    forced = deepmine.fit(tiny, target="label", **{**FAST, "model.trees": "on"})
    assert forced.model_spec["trees"]["splits"] == 1  # one padding split, no path through it
    rows = tiny.drop(columns="label")
    assert set(forced.predict(rows)) <= {"yes", "no"} and np.isfinite(forced.predict_proba(rows)).all()
    auto = deepmine.fit(tiny, target="label", **FAST)  # 4 validation rows: a weight chosen on them is noise
    assert "trees" not in auto.training


def test_explanations_of_a_blend_show_the_blends_prediction(blended):
    from deepmine.explain.integrated_gradients import integrated_gradients

    frame, model = blended
    rows = frame.drop(columns="label").head(4)
    explained = integrated_gradients(model, rows)
    assert explained["model"].startswith("the network (weight")
    assert [row["prediction"] for row in explained["rows"]] == list(model.predict(rows))


def test_tree_columns_skip_the_bins_of_numbers_and_date_parts():
    frame = _interaction_table(300)
    frame.loc[::7, "size"] = np.nan  # a missing flag column follows the value
    frame["day"] = pd.date_range("2024-01-01", periods=300, freq="37h").astype(str)
    model = deepmine.fit(frame, target="label", **{**FAST, "model.trees": False, "trainer.epochs": 1})
    pipeline = model.pipeline
    widths = dict(zip(pipeline.numeric, pipeline.numeric_widths, strict=True))
    size, noise = pipeline.numeric["size"], pipeline.numeric["noise"]
    assert len(size.edges) > 2 and size.flag_missing and not noise.flag_missing  # bins on, one flag
    parts = pipeline.numeric["day"].parts
    starts = np.cumsum([0, *widths.values()])
    day = dict(zip(pipeline.numeric, starts, strict=False))["day"]
    part_starts = np.cumsum([0, *(p.width for p in parts.values())])[:-1]
    expected = [0, 1, widths["size"]] + [int(day + s) for s in part_starts] + [int(starts[-1])]
    assert pipeline.tree_columns == expected  # value + flag of size, value of noise, each date part, the code


def test_a_broken_lightgbm_leaves_trees_out_under_auto_and_fails_on_with_the_fix(monkeypatch):
    from deepmine.exceptions import ConfigError

    frame = _interaction_table(300)
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # `import lightgbm` raises ImportError, as a broken install
    with pytest.warns(UserWarning, match=r"trees left out: LightGBM failed to import .*libgomp"):
        auto = deepmine.fit(frame, target="label", **FAST)
    assert "trees" not in auto.training and "trees" not in auto.model_spec
    with pytest.raises(ConfigError, match=r"model.trees=on needs LightGBM, which failed to import"):
        deepmine.fit(frame, target="label", **{**FAST, "model.trees": "on"})


def test_training_rows_of_one_class_leave_trees_out_and_say_why():
    from deepmine.config import RunConfig
    from deepmine.tasks.tree_member import TreeRows, add_tree_member, describe_trees

    numeric, codes = _design(50)
    x = [torch.from_numpy(numeric).float(), torch.from_numpy(codes).long()]
    ones = torch.ones(50, dtype=torch.int64)
    rows = TreeRows(x, ones, x, ones, "binary", 2, RunConfig(), [0, 1, 2, 3, 4])
    network = nn.Linear(3, 2)
    model, record = add_tree_member(network, {}, rows)
    assert model is network and record["weight"] == 0
    assert describe_trees(record) == "trees: left out: the training rows hold one class"
