"""Recommendation: reading logs, the models, the edge cases (unknown user / item, a user with every item,
duplicates, ratings outside the seen range), ranking metrics against scikit-learn, the artifact and the CLI."""

from __future__ import annotations

import json
import warnings
from io import StringIO

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DATA_ROOT, recorded_run
from sklearn.metrics import ndcg_score

import deepmine
from deepmine.data.interactions import infer_columns, read_interactions
from deepmine.evaluate.ranking import full_ranking_metrics, sampled_metrics, sampled_ranks
from deepmine.exceptions import ArtifactError, ColumnError, ConfigError, DataError, DeepmineWarning
from deepmine.recommender import Recommender
from deepmine.train.callbacks import Callback

TINY = {
    "trainer.epochs": 4,
    "trainer.batch_size": 64,
    "trainer.progress": False,
    "model.factors": 8,
    "model.hidden": [8],
}


def make_log(n_users: int = 30, n_items: int = 20, per_user: int = 8, seed: int = 0) -> pd.DataFrame:
    """Ratings 1-5 from two latent tastes, with timestamps; item 0 is the most popular."""
    rng = np.random.default_rng(seed)
    taste_u, taste_i = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    rows = []
    for u in range(n_users):
        weights = np.exp(-np.arange(n_items) / 6.0)
        items = rng.choice(n_items, per_user, replace=False, p=weights / weights.sum())
        for t, i in enumerate(items):
            score = 3 + 1.2 * taste_u[u] @ taste_i[i] + rng.normal(0, 0.3)
            rows.append((u + 1, f"item{i}", int(np.clip(np.rint(score), 1, 5)), 1_000_000 + 100 * u + t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return make_log()


@pytest.fixture(scope="module")
def rating_model(log) -> Recommender:
    return Recommender(model="mf", **TINY).fit(log)


# ---- reading -----------------------------------------------------------------------------------------------
def test_headerless_tab_pipe_and_double_colon_files_find_their_columns(tmp_path, log):
    rows = log.head(12)
    (tmp_path / "u.data").write_text(rows.to_csv(sep="\t", header=False, index=False))
    (tmp_path / "pipe.txt").write_text(rows.to_csv(sep="|", header=False, index=False))
    (tmp_path / "ratings.dat").write_text("\n".join("::".join(map(str, r)) for r in rows.itertuples(index=False)))
    for name in ("u.data", "pipe.txt", "ratings.dat"):
        frame = read_interactions(tmp_path / name)
        roles = infer_columns(frame, where=name)
        assert (roles.user, roles.item, roles.rating, roles.time) == ("column_1", "column_2", "column_3", "column_4")
        assert len(frame) == 12
        unrated = infer_columns(frame, rating="none", where=name)  # the ratings are not taken for the times
        assert (unrated.rating, unrated.time) == (None, "column_4")
    named = infer_columns(rows.rename(columns={"user_id": "userId", "item_id": "movieId"}))
    assert (named.user, named.item, named.rating, named.time) == ("userId", "movieId", "rating", "timestamp")
    assert infer_columns(rows, rating="none", time="none").rating is None


def test_a_model_fitted_on_a_headerless_file_reads_files_with_a_header_by_position(tmp_path, log):
    (tmp_path / "u.data").write_text(log.to_csv(sep="\t", header=False, index=False))
    rec = Recommender(model="mf", **TINY).fit(tmp_path / "u.data")
    test = log.tail(20).rename(columns={"user_id": "user", "item_id": "movie"})  # other names, same positions
    test.to_csv(tmp_path / "test.csv", index=False)
    scored = rec.evaluate(tmp_path / "test.csv")
    assert scored["rows"] == 20 and scored["unknown_users"] == 0
    pairs = rec.predict_frame(tmp_path / "test.csv")
    assert len(pairs) == 20 and (pairs["source"] == "model").all()


def test_a_missing_column_is_named_with_a_suggestion(log):
    with pytest.raises(ColumnError, match="did you mean 'item_id'"):
        Recommender(item="item_ud", **TINY).fit(log)
    with pytest.raises(ColumnError, match="--user"):
        Recommender(**TINY).fit(log.rename(columns={"user_id": "who"}))


def test_rating_task_without_ratings_and_unknown_model_are_usage_errors(log):
    with pytest.raises(ConfigError, match="--rating COL"):
        Recommender(task="rating", **TINY).fit(log.drop(columns="rating"))
    with pytest.raises(ConfigError, match="did you mean 'neumf'"):
        Recommender(model="neumff", **TINY).fit(log)
    with pytest.raises(ConfigError, match="does not do rating"):
        Recommender(model="gru4rec", task="rating", **TINY).fit(log)


# ---- the edge cases ----------------------------------------------------------------------------------------
def test_unknown_user_gets_baseline_or_popular_items_marked_as_such_with_a_warning(rating_model, log):
    with pytest.warns(DeepmineWarning, match=r"the users: 1 unknown user\(s\) \(99999\) did not occur.*'baseline'"):
        out = rating_model.recommend([1, 99999], k=3)
    unknown = out[out["user"] == 99999]
    assert list(unknown["source"]) == ["baseline"] * 3
    base = rating_model._state.baseline  # the damped baseline: global mean + item bias, on the rating scale
    best = np.argsort(-np.asarray(base["item_bias"]), kind="stable")[:3]
    assert list(unknown["item"]) == list(rating_model.vocabulary_.items_out(best))
    assert unknown["score"].between(1.0, 5.0).all() and unknown["score"].is_monotonic_decreasing
    assert (out[out["user"] == 1]["source"] == "model").all()
    ranking = Recommender(model="mf", task="ranking", **TINY).fit(log)
    with pytest.warns(DeepmineWarning, match="most popular items"):
        cold = ranking.recommend([99999], k=3)
    assert list(cold["source"]) == ["popularity"] * 3
    assert cold["item"].iloc[0] == log["item_id"].value_counts().index[0]
    pair = rating_model.predict_pairs([99999], ["item0"])
    assert pair["source"].iloc[0] == "baseline" and 1.0 <= pair["prediction"].iloc[0] <= 5.0


def test_unknown_user_warnings_are_one_line_located_in_the_callers_code(rating_model, tmp_path):
    (tmp_path / "users.csv").write_text("user_id\n1\n424242\n")
    calls = {
        "the users: 1 unknown user(s) (99999)": lambda: rating_model.recommend([1, 99999, 99999], k=2),
        "the pairs: 1 unknown user(s) (99999)": lambda: rating_model.predict(99999, "item0"),
        "users.csv: 1 unknown user(s) (424242)": lambda: rating_model.predict_frame(tmp_path / "users.csv"),
    }
    for start, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        [warning] = [w for w in caught if "did not occur in training" in str(w.message)]
        assert warning.filename == __file__  # Python shows this line, not one inside deepmine
        assert start in str(warning.message) and "\n" not in str(warning.message)


def test_an_integer_id_typed_as_a_float_or_padded_is_the_known_id(rating_model, log):
    as_typed = rating_model.recommend(["1.0", " 2 ", 3.0], k=3)  # --users 1.0, a padded cell, a float column
    exact = rating_model.recommend([1, 2, 3], k=3)
    assert (as_typed["source"] == "model").all()
    assert list(as_typed["item"]) == list(exact["item"])
    pairs = rating_model.predict_pairs(["1.0", "1.5"], ["item0", "item0"])
    assert list(pairs["source"]) == ["model", "baseline"]  # 1.5 is no integer id: unknown


def test_unknown_item_falls_back_to_the_user_baseline(rating_model, log):
    pairs = rating_model.predict_pairs([1, 1], ["item0", "never-seen"])
    assert list(pairs["source"]) == ["model", "baseline"]
    test = pd.DataFrame({"user_id": [1, 2], "item_id": ["item0", "never-seen"], "rating": [4, 3], "timestamp": [0, 0]})
    metrics = rating_model.evaluate(test)
    assert metrics["unknown_items"] == 1 and metrics["rows"] == 2 and np.isfinite(metrics["rmse"])


def test_a_user_who_has_every_item_gets_nothing_and_a_warning(log):
    everything = pd.DataFrame(
        {"user_id": 777, "item_id": sorted(log["item_id"].unique()), "rating": 4, "timestamp": 5_000_000}
    )
    data = pd.concat([log, everything], ignore_index=True)
    rec = Recommender(model="mf", task="ranking", **TINY).fit(data)  # BPR must not look for a free item forever
    with pytest.warns(DeepmineWarning, match="already have every known item"):
        out = rec.recommend([777, 1], k=5)
    assert 777 not in set(out["user"]) and (out["user"] == 1).sum() == 5


def test_duplicate_interactions_keep_the_latest_or_average_or_stop(log):
    first = log.iloc[0]
    repeat = first.copy()
    repeat["rating"], repeat["timestamp"] = 1 if first["rating"] != 1 else 5, first["timestamp"] + 10_000
    data = pd.concat([log, repeat.to_frame().T], ignore_index=True).astype(log.dtypes.to_dict())
    with pytest.warns(DeepmineWarning, match="merged 1 repeated"):
        rec = Recommender(model="mf", **TINY).fit(data)
    assert rec.training["interactions"] == len(log)
    with pytest.raises(DataError, match="1 repeated"):
        Recommender(model="mf", duplicates="error", **TINY).fit(data)
    from deepmine.data.interactions import build_vocabulary, encode, merge_duplicates

    roles = infer_columns(data)
    vocab = build_vocabulary(data, roles)
    encoded = encode(data, roles, vocab, "data")
    with pytest.warns(DeepmineWarning):
        latest = merge_duplicates(encoded, "last", "data")
    with pytest.warns(DeepmineWarning):
        mean = merge_duplicates(encoded, "mean", "data")
    u, i = vocab.user_index([str(first["user_id"])])[0], vocab.item_index([first["item_id"]])[0]
    pick = lambda m: m.ratings[(m.users == u) & (m.items == i)]  # noqa: E731
    assert pick(latest).tolist() == [repeat["rating"]]
    assert pick(mean).tolist() == [(repeat["rating"] + first["rating"]) / 2]


def test_ratings_outside_the_seen_range_are_clipped_and_reported(rating_model):
    predictions = rating_model.predict_pairs([1, 2, 3, 99999], ["item0", "item1", "item2", "item0"])["prediction"]
    assert predictions.between(1, 5).all()
    test = pd.DataFrame({"user_id": [1, 2], "item_id": ["item0", "item1"], "rating": [10, -3], "timestamp": [0, 0]})
    with pytest.warns(DeepmineWarning, match=r"outside the range seen in training \[1, 5\]"):
        metrics = rating_model.evaluate(test)
    assert metrics["ratings_outside_range"] == 2
    recs = rating_model.recommend([1], k=20)
    assert recs["score"].between(1, 5).all()


def test_non_numeric_ratings_are_refused(log):
    bad = log.astype({"rating": object})
    bad.loc[3, "rating"] = "five"
    with pytest.raises(DataError, match="'five'"):
        Recommender(model="mf", **TINY).fit(bad)


# ---- recommendations ---------------------------------------------------------------------------------------
def test_recommendations_leave_out_what_the_user_has(rating_model, log):
    out = rating_model.recommend(log["user_id"].unique()[:10], k=5)
    had = set(zip(log["user_id"], log["item_id"], strict=True))
    assert not any((u, i) in had for u, i in zip(out["user"], out["item"], strict=True))
    assert out.groupby("user")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    scores = out[out["user"] == out["user"].iloc[0]]["score"].to_numpy()
    assert (np.diff(scores) <= 1e-9).all()


@pytest.mark.parametrize("model", ["gru4rec", "neumf", "mf", "gmf"])
def test_ranking_models_fit_and_report_hr_and_ndcg(log, model):
    rec = Recommender(model=model, task="ranking", **TINY).fit(log)
    valid = rec.metrics["valid"]
    assert set(valid) >= {"hr_at_10", "ndcg_at_10", "mrr"} and 0 <= valid["hr_at_10"] <= 1
    test = log.groupby("user_id").tail(1)
    metrics = rec.evaluate(test)
    assert metrics["rows"] == len(test) and {"hr_at_10", "ndcg_at_10", "recall_at_10"} <= set(metrics)
    assert rec.recommend([1], k=3)["source"].eq("model").all()


def test_two_tower_uses_user_and_item_attributes(log, tmp_path):
    users = pd.DataFrame({"user_id": range(1, 31), "age": np.arange(30) + 20, "group": ["a", "b", "c"] * 10})
    items = pd.DataFrame({"item_id": [f"item{i}" for i in range(20)], "genre": ["x", "y"] * 10, "url": range(20)})
    users.to_csv(tmp_path / "users.csv", index=False)
    rec = Recommender(model="two_tower", **TINY).fit(log, user_features=tmp_path / "users.csv", item_features=items)
    assert rec.fitted_.side_features["user"]["used"] == ["age", "group"]
    assert rec.fitted_.side_features["item"]["dropped"] == ["url"] or "url" in rec.fitted_.side_features["item"]["used"]
    assert rec.fitted_.model.user_features.abs().sum() > 0
    assert np.isfinite(rec.evaluate(log.tail(20))["rmse"])


class CrashAfter(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer, epoch):
        if epoch == self.epoch + 1:
            raise KeyboardInterrupt


def test_a_killed_run_resumes_to_the_same_weights(log, tmp_path):
    """BPR resamples negatives every epoch; the sampler's generator is part of the checkpoint."""
    settings = {**TINY, "trainer.epochs": 5, "trainer.early_stopping": False}
    whole = Recommender(model="mf", task="ranking", **settings).fit(log, checkpoint_dir=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        Recommender(model="mf", task="ranking", **settings).fit(
            log, checkpoint_dir=tmp_path / "b", callbacks=[CrashAfter(2)]
        )
    resumed = Recommender(model="mf", task="ranking", **settings).fit(log, checkpoint_dir=tmp_path / "b", resume=True)
    for key, value in whole.fitted_.model.state_dict().items():
        assert torch.equal(value, resumed.fitted_.model.state_dict()[key]), key


# ---- metrics -----------------------------------------------------------------------------------------------
def test_an_ensemble_records_the_epochs_of_its_longest_member_not_their_sum(log):
    settings = {**TINY, "trainer.epochs": 6, "trainer.patience": 1, "optimizer.lr": 0.2, "refit": False}
    rec = Recommender(model="mf+gmf+mf", task="ranking", **settings).fit(log)
    per_member = [len(history) for history in rec.fitted_.history]
    assert len(per_member) == 3 and rec.training["epochs_per_member"] == per_member
    assert rec.training["epochs"] == max(per_member) <= 6


def test_sampled_metrics_match_scikit_learn_ndcg_with_one_relevant_item():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=50), rng.normal(size=(50, 9))
    ranks = sampled_ranks(pos, neg)
    ours = sampled_metrics(ranks, 5)
    truth = np.zeros((50, 10))
    truth[:, 0] = 1
    theirs = ndcg_score(truth, np.concatenate([pos[:, None], neg], axis=1), k=5)
    assert ours["ndcg_at_5"] == pytest.approx(theirs)
    assert ours["hr_at_5"] == pytest.approx(np.mean(ranks < 5))
    assert sampled_ranks(np.array([1.0]), np.array([[1.0, 0.0]]))[0] == 1  # a tie counts against the positive


def test_full_ranking_recall_and_ndcg_on_a_hand_worked_case():
    metrics = full_ranking_metrics([np.array([3, 1, 2]), np.array([0, 5, 6])], [np.array([1, 9]), np.array([7])], 3)
    assert metrics["recall_at_3"] == pytest.approx((1 / 2 + 0) / 2)
    assert metrics["full_hr_at_3"] == pytest.approx(0.5)
    assert metrics["full_ndcg_at_3"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)) / 2)


# ---- artifact ----------------------------------------------------------------------------------------------
def test_artifact_round_trip_and_tamper_check(rating_model, tmp_path, log):
    folder = rating_model.save(tmp_path / "rec")
    manifest = json.loads((folder / "deepmine.json").read_text())
    assert manifest["kind"] == "recommender" and manifest["task"] == "rating"
    loaded = deepmine.load(folder)
    assert isinstance(loaded, Recommender)
    pd.testing.assert_frame_equal(loaded.recommend([1, 2, 99999], k=4), rating_model.recommend([1, 2, 99999], k=4))
    assert loaded.evaluate(log.tail(30)) == rating_model.evaluate(log.tail(30))
    with open(folder / "weights.safetensors", "r+b") as handle:
        handle.seek(-3, 2)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match="checksum"):
        Recommender.load(folder)


# ---- the command line --------------------------------------------------------------------------------------
def test_cli_recommend_evaluate_and_predict(run_cli, tmp_path, log):
    train, test = log.groupby("user_id").head(6), log.groupby("user_id").tail(2)
    train.to_csv(tmp_path / "train.tsv", sep="\t", header=False, index=False)
    test.to_csv(tmp_path / "test.tsv", sep="\t", header=False, index=False)
    out = tmp_path / "rec"
    tiny = [x for key, value in TINY.items() for x in ("--set", f"{key}={value}")]
    fit = run_cli("recommend", tmp_path / "train.tsv", "--model", "mf", "--out", out, "--json", *tiny)
    assert fit.code == 0, fit.err
    summary = json.loads(fit.out)
    assert summary["task"] == "rating" and summary["columns"]["rating"] == "column_3" and "rmse" in summary
    run = recorded_run(summary["run_id"])  # recommenders are tracked like table fits
    assert run["status"] == "FINISHED" and run["tags"]["deepmine.task"] == "rating"
    assert run["metrics"]["rmse"] == pytest.approx(summary["rmse"]) and run["metrics"]["fit_epochs"] > 0
    assert "train_loss" in run["metrics"] and "artifact/deepmine.json" in run["files"]
    ev = run_cli("evaluate", out, tmp_path / "test.tsv", "--json")
    assert ev.code == 0, ev.err
    assert set(json.loads(ev.out)) >= {"rmse", "mae", "unknown_users", "unknown_items"}
    pr = run_cli("predict", out, "--users", "1,2,424242", "--k", "3")
    assert pr.code == 0, pr.err
    table = pd.read_csv(StringIO(pr.out))
    assert list(table.columns) == ["user", "rank", "item", "score", "source"] and len(table) == 9
    assert set(table[table["user"] == 424242]["source"]) == {"baseline"}  # a rating model's cold start
    assert table[table["user"] == 424242]["score"].between(1, 5).all()
    assert "warning: --users: 1 unknown user(s) (424242) did not occur in training;" in pr.err
    pairs = run_cli("predict", out, tmp_path / "test.tsv")
    assert pairs.code == 0 and len(pd.read_csv(StringIO(pairs.out))) == len(test)
    ranking = run_cli(
        "recommend", tmp_path / "train.tsv", "--task", "ranking", "--model", "gmf", "-o", tmp_path / "r", *tiny,
        "--no-track", "--json",
    )  # fmt: skip
    assert ranking.code == 0, ranking.err
    assert "run_id" not in json.loads(ranking.out)
    ev = run_cli("evaluate", tmp_path / "r", tmp_path / "test.tsv", "--json")
    assert {"hr_at_10", "ndcg_at_10", "mrr"} <= set(json.loads(ev.out))
    assert run_cli("predict", out).code == 2  # neither --users nor DATA
    bad = run_cli("recommend", tmp_path / "train.tsv", "--set", "model.factorz=3")
    assert bad.code == 2 and "model.factors" in bad.err


def test_cli_pairs_refuse_a_blank_id_and_warn_once_about_unknown_ids(run_cli, tmp_path, rating_model):
    out = rating_model.save(tmp_path / "rec")
    (tmp_path / "blank.csv").write_text("user_id,item_id\n1,item0\n1,item1\n,item0\n")
    blank = run_cli("predict", out, tmp_path / "blank.csv")
    assert blank.code == 1 and blank.out == ""  # nothing half-written
    assert "blank.csv row 3 has no user in column 'user_id'" in blank.err and len(blank.err.strip().splitlines()) == 1
    (tmp_path / "pairs.csv").write_text("user_id,item_id\n1,item0\n1,never\n424242,item0\n424243,item1\n")
    pairs = run_cli("predict", out, tmp_path / "pairs.csv")
    assert pairs.code == 0, pairs.err
    assert pairs.out.splitlines()[1].startswith("1,item0,") and pairs.out.splitlines()[3].startswith("424242,")
    warned = [line for line in pairs.err.splitlines() if "did not occur in training" in line]
    assert len(warned) == 1 and "2 unknown user(s) (424242, 424243) and 1 unknown item(s) (never)" in warned[0]
    assert "their 3 row(s) get the damped baseline rating" in warned[0]
    with pytest.raises(DataError, match="row 2 has no item"):
        rating_model.predict_pairs([1, 2], ["item0", None])


def test_blank_lines_around_a_one_column_users_file_are_no_users(run_cli, tmp_path, rating_model):
    out = rating_model.save(tmp_path / "rec")
    expected = run_cli("predict", out, "--users", "1,2", "--k", "2")
    assert expected.code == 0, expected.err
    for name, text in (("ids.csv", "1\n2\n\n"), ("named.csv", "user_id\n\n1\n2\n  \n\n")):
        (tmp_path / name).write_text(text)
        listed = run_cli("predict", out, tmp_path / name, "--k", "2")
        assert listed.code == 0, listed.err
        assert listed.out == expected.out  # the same users, written as integers (not 1.0)
    (tmp_path / "gap.csv").write_text("user_id\n1\n\n2\n\n")  # a blank between ids may be a lost id: refused
    gap = run_cli("predict", out, tmp_path / "gap.csv")
    assert gap.code == 1 and gap.out == ""
    assert "gap.csv row 2 has no user in column 'user_id'" in gap.err and len(gap.err.strip().splitlines()) == 1


def test_tabular_predict_still_needs_data(run_cli, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "deepmine.json").write_text('{"format_version": 1}')
    done = run_cli("predict", tmp_path / "model")
    assert done.code == 2 and "predict needs DATA" in done.err


@pytest.mark.skipif(not (DATA_ROOT / "movielens-100k" / "u.data").exists(), reason="MovieLens-100k not present")
def test_a_raw_slice_of_movielens_u_data(tmp_path):
    lines = (DATA_ROOT / "movielens-100k" / "u.data").read_text().splitlines()[:3000]
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    rec = Recommender(model="mf", **TINY).fit(tmp_path / "u.data")
    roles = rec.fitted_.roles
    assert (roles.rating, roles.time) == ("column_3", "column_4") and rec.task_ == "rating"
    assert rec.vocabulary_.user_int and rec.recommend([196], k=2)["item"].map(type).eq(int).all()
