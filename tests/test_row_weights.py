"""Row weights: ``columns.weight`` and scikit-learn's ``sample_weight`` scale each training row's loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import deepmine
from deepmine.exceptions import ConfigError, DataError

QUIET = {"report.enabled": False, "tracking.enabled": False}
FAST = {"trainer.epochs": 12, "model.hidden": [16], "model.ensemble": 1, **QUIET}
LEARN = {**FAST, "trainer.epochs": 40, "optimizer.lr": 0.01}  # enough steps to learn the weighted majority


def _contradicting(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Every x appears twice, once labelled 'yes' and once 'no': only the weights say which label counts."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n // 2)
    frame = pd.DataFrame({"x": np.concatenate([x, x]), "label": ["yes"] * (n // 2) + ["no"] * (n // 2)})
    yes_heavy = np.where(frame["x"] > 0, 9.0, 1.0)  # right half: 'yes' rows weigh 9, 'no' rows 1; left: reversed
    frame["w"] = np.where(frame["label"] == "yes", yes_heavy, 10.0 - yes_heavy)
    return frame


@pytest.mark.parametrize("trees", ["off", "on"])
def test_weights_decide_between_contradicting_labels(trees):
    frame = _contradicting()
    model = deepmine.fit(frame, target="label", **{**LEARN, "columns.weight": "w", "model.trees": trees})
    assert ("trees" in model.model_spec) == (trees == "on")
    grid = pd.DataFrame({"x": [-0.8, -0.5, -0.2, 0.2, 0.5, 0.8]})
    assert list(model.predict(grid)) == ["no"] * 3 + ["yes"] * 3  # the heavier label wins on each side
    flipped = frame.assign(w=10.0 - frame["w"])
    model = deepmine.fit(flipped, target="label", **{**LEARN, "columns.weight": "w", "model.trees": trees})
    assert list(model.predict(grid)) == ["yes"] * 3 + ["no"] * 3


def test_weights_of_one_train_as_no_weights_and_the_column_is_no_feature():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.choice(["p", "q", "r"], 300)})
    frame["y"] = (frame["a"] + (frame["b"] == "q") > 0.3).astype(int)
    plain = deepmine.fit(frame, target="y", **FAST)
    weighted = deepmine.fit(frame.assign(w=1.0), target="y", **{**FAST, "columns.weight": "w"})
    assert [c.name for c in weighted.schema.features] == ["a", "b"]
    assert [c.role for c in weighted.schema.columns if c.name == "w"] == ["weight"]
    rows = frame[["a", "b"]]  # no weight column at predict time
    np.testing.assert_allclose(weighted.predict_proba(rows), plain.predict_proba(rows), atol=1e-5)


@pytest.mark.parametrize(
    "values, message",
    [
        ([1.0, -2.0], r"weight column 'w' of the DataFrame holds -2\.0 at row 2; row weights must be finite numbers"),
        ([1.0, None], r"weight column 'w' of the DataFrame has no value at row 2"),
        (["1", "heavy"], r"weight column 'w' of the DataFrame holds 'heavy' at row 2"),
        ([0.0, 0.0], r"weight column 'w' of the DataFrame is 0 in every row"),
    ],
)
def test_bad_weights_name_the_column_row_and_value(values, message):
    frame = _contradicting(40)
    frame["w"] = pd.Series(values * 20, dtype=object)
    with pytest.raises(DataError, match=message):
        deepmine.fit(frame, target="label", **{**FAST, "columns.weight": "w"})


def test_the_weight_column_cannot_be_the_target_or_a_missing_column():
    frame = _contradicting(40)
    with pytest.raises(ConfigError, match="columns.weight 'label' is also the target"):
        deepmine.fit(frame, target="label", **{**FAST, "columns.weight": "label"})
    with pytest.raises(DataError, match="column 'weight' is not in"):
        deepmine.fit(frame, target="label", **{**FAST, "columns.weight": "weight"})


def test_cli_reports_a_bad_weight_in_one_line(run_cli, tmp_path):
    frame = _contradicting(200)
    frame.loc[7, "w"] = -1
    frame.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "m"
    result = run_cli(
        "fit", tmp_path / "t.csv", "--target", "label", "--set", "columns.weight=w", "--out", out, "--no-track"
    )
    assert result.code != 0
    assert "weight column 'w'" in result.err and "-1" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("kind", ["cross_entropy", "class_weighted", "focal", "regression", "multilabel"])
def test_per_row_losses_add_up_to_the_loss(kind):
    from deepmine.nn.losses import FocalLoss
    from deepmine.tasks.row_weights import RowWeightedLoss, pack, per_row_loss
    from deepmine.tasks.supervised import RegressionLoss

    torch.manual_seed(0)
    output, labels = torch.randn(12, 3), torch.randint(0, 3, (12,))
    class_weight = torch.tensor([0.5, 2.0, 1.0])
    loss, target = {
        "cross_entropy": (nn.CrossEntropyLoss(), labels),
        "class_weighted": (nn.CrossEntropyLoss(weight=class_weight), labels),
        "focal": (FocalLoss(weight=class_weight), labels),
        "regression": (RegressionLoss(), torch.randn(12)),
        "multilabel": (nn.BCEWithLogitsLoss(pos_weight=class_weight), torch.randint(0, 2, (12, 3)).float()),
    }[kind]
    out = output[:, :1] if kind == "regression" else output
    numerator, denominator = per_row_loss(loss, out, target)
    torch.testing.assert_close(numerator.sum() / denominator.sum(), loss(out, target))
    weighted = RowWeightedLoss(loss, target.dtype, multilabel=kind == "multilabel")
    torch.testing.assert_close(weighted(out, pack(target, torch.ones(12))), loss(out, target))
    doubled = pack(torch.cat([target, target[:1]]), torch.cat([torch.ones(12), torch.ones(1)]))
    first_twice = pack(target, torch.cat([torch.tensor([2.0]), torch.ones(11)]))  # weight 2 = the row twice
    torch.testing.assert_close(weighted(out, first_twice), weighted(torch.cat([out, out[:1]]), doubled))


def test_sklearn_sample_weight_scales_rows():
    from deepmine.sklearn_api import TabularClassifier

    frame = _contradicting()
    grid = np.array([[-0.6], [0.6]])
    estimator = TabularClassifier(
        epochs=40, lr=0.01, hidden=(16,), progress=False, model__ensemble=1, model__trees="off"
    )
    estimator.fit(frame[["x"]].to_numpy(), frame["label"], sample_weight=frame["w"].to_numpy())
    assert list(estimator.predict(grid)) == ["no", "yes"]
    assert list(estimator.feature_names_in_) == ["x0"]
    estimator.fit(frame[["x"]].to_numpy(), frame["label"], sample_weight=10.0 - frame["w"].to_numpy())
    assert list(estimator.predict(grid)) == ["yes", "no"]
    same = TabularClassifier(epochs=2, hidden=(16,), progress=False, model__ensemble=1, model__trees="off")
    alike = same.fit(frame[["x"]].to_numpy(), frame["label"], sample_weight=2.0).predict_proba(grid)
    plain = same.fit(frame[["x"]].to_numpy(), frame["label"]).predict_proba(grid)
    np.testing.assert_allclose(alike, plain, atol=1e-5)  # one number for every row: the same as no weights
    with pytest.raises(ValueError, match=r"sample_weight must be 1-D with one weight per row of X \(400\)"):
        estimator.fit(frame[["x"]].to_numpy(), frame["label"], sample_weight=[1.0, 2.0])


def test_streaming_refuses_weights(tmp_path):
    frame = _contradicting(60)
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ConfigError, match="columns.weight 'w' is not supported while streaming"):
        deepmine.fit(str(tmp_path / "t.csv"), target="label", **{**FAST, "columns.weight": "w", "data.streaming": True})


@pytest.mark.parametrize(("values", "shown"), [([1, -2], "-2"), ([1.0, -2.5], "-2.5"), ([1.0, np.inf], "inf")])
def test_a_bad_weight_in_a_numeric_column_is_shown_as_the_user_wrote_it(values, shown):
    frame = _contradicting(40)
    frame["w"] = values * 20  # a numeric column, as read from a CSV: numpy scalars, not Python objects
    with pytest.raises(DataError) as error:
        deepmine.fit(frame, target="label", **{**FAST, "columns.weight": "w"})
    assert f"holds {shown} at row 2;" in str(error.value) and "np." not in str(error.value)


def test_a_bad_weight_is_named_by_its_row_in_the_file_after_rows_without_a_target(run_cli, tmp_path):
    frame = _contradicting(200)
    frame["w"] = frame["w"].astype(object)
    frame.loc[[1, 2], "label"] = None  # dropped with a warning before the weights are read
    frame.loc[9, "w"] = "heavy"
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = run_cli("fit", tmp_path / "t.csv", "--target", "label", "--set", "columns.weight=w", "--no-track")
    assert result.code != 0
    assert "holds 'heavy' at row 10;" in result.err


def test_a_role_for_the_weight_column_is_refused_rather_than_making_it_a_feature():
    frame = _contradicting(40)
    settings = {**FAST, "columns.weight": "w", "columns.roles": {"w": "numeric"}}
    with pytest.raises(ConfigError, match=r"columns.weight 'w' also has the role 'numeric' in columns.roles.*remove"):
        deepmine.fit(frame, target="label", **settings)


@pytest.mark.parametrize(
    ("bad", "message"),
    [(-1.0, "sample_weight holds -1.0 at row 3;"), (np.nan, "sample_weight has no value at row 3;"), ("x", "'x'")],
)
def test_sklearn_names_a_bad_sample_weight_as_the_caller_passed_it(bad, message):
    from deepmine.sklearn_api import TabularClassifier

    frame = _contradicting(40)
    weights = frame["w"].to_list()
    weights[2] = bad
    with pytest.raises(ValueError) as error:
        TabularClassifier(epochs=1, model__ensemble=1).fit(frame[["x"]], frame["label"], sample_weight=weights)
    assert message in str(error.value) and "__sample_weight__" not in str(error.value)
    assert "could not convert" not in str(error.value)
    with pytest.raises(ValueError, match=r"^sample_weight is 0 in every row"):
        TabularClassifier(epochs=1, model__ensemble=1).fit(frame[["x"]], frame["label"], sample_weight=[0] * 40)


def test_a_valid_file_without_the_weight_column_weighs_its_rows_alike():
    frame = _contradicting(300)
    train, valid = frame.iloc[::2], frame.iloc[1::2]
    settings = {**FAST, "columns.weight": "w", "model.trees": "off"}
    without = deepmine.fit(train, target="label", valid=valid.drop(columns="w"), **settings)
    ones = deepmine.fit(train, target="label", valid=valid.assign(w=1.0), **settings)
    weighted = deepmine.fit(train, target="label", valid=valid, **settings)
    losses = [[h["valid_loss"] for h in m.history] for m in (without, ones, weighted)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # no column = weights of one
    assert losses[0] != pytest.approx(losses[2], rel=1e-3)  # the column's weights change the validation loss


def test_the_weight_column_is_read_once_per_table_of_a_fit(monkeypatch):
    from deepmine.tasks import row_weights, supervised

    read = row_weights.read_weights
    tables = []

    def spy(frame, *args, **kwargs):
        tables.append(len(frame))
        return read(frame, *args, **kwargs)

    monkeypatch.setattr(row_weights, "read_weights", spy)
    monkeypatch.setattr(supervised, "read_weights", spy)
    frame = _contradicting(200)
    settings = {**FAST, "trainer.epochs": 1, "columns.weight": "w", "model.trees": "off"}
    deepmine.fit(frame, target="label", **settings)
    assert tables == [200]  # the whole table, not again for its training and validation splits
    tables.clear()
    deepmine.fit(frame.drop(index=frame.index[::4]), target="label", valid=frame.iloc[::4], **settings)
    assert tables == [150, 50]  # the training table and the --valid table, once each


SPLIT = {"trainer.valid_fraction": 0.25, "seed": 7}


def _valid_rows(frame: pd.DataFrame) -> np.ndarray:
    """The positions of the rows a fit with SPLIT validates on."""
    from deepmine.data.splits import split_positions

    return split_positions(frame, "label", SPLIT["trainer.valid_fraction"], SPLIT["seed"], stratify=True)[1]


@pytest.mark.parametrize("trees", ["off", "on"])
def test_a_validation_split_of_weight_0_rows_is_measured_unweighted_with_a_warning(trees):
    from deepmine.exceptions import DeepmineWarning

    frame = _contradicting(300)
    held = _valid_rows(frame)
    settings = {**FAST, **SPLIT, "columns.weight": "w", "model.trees": trees}
    zero = frame.assign(w=frame["w"].where(~frame.index.isin(held), 0.0))
    with pytest.warns(
        DeepmineWarning,
        match=r"weight column 'w' of the DataFrame: every row of the validation split "
        r"has weight 0, so its loss .* weighs its rows alike; .*--valid.*trainer\.valid_fraction",
    ):
        model = deepmine.fit(zero, target="label", **settings)
    alike = deepmine.fit(zero.assign(w=zero["w"].where(~zero.index.isin(held), 1.0)), target="label", **settings)
    losses = [[h["valid_loss"] for h in m.history] for m in (model, alike)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6) and np.isfinite(losses[0]).all() and losses[0][0] > 0


def test_a_training_split_of_weight_0_rows_is_an_error_that_says_how_to_split_otherwise():
    frame = _contradicting(300)
    only_valid = frame.assign(w=np.where(frame.index.isin(_valid_rows(frame)), frame["w"], 0.0))
    with pytest.raises(
        DataError,
        match=r"every row of weight > 0 fell in the validation split, so the training rows "
        r"all weigh 0; pass a --valid file, or change trainer.valid_fraction or the seed",
    ):
        deepmine.fit(only_valid, target="label", **{**FAST, **SPLIT, "columns.weight": "w"})
