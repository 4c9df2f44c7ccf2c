"""Recommender: fit on an interaction log, recommend top-K items per user, predict a (user, item) score, evaluate
on held-out interactions, and save / load the artifact folder (``deepmine.json`` with ``"kind": "recommender"``,
``weights.safetensors``, ``checksum.sha256``; never pickle).

Users or items never seen in training are answered from popularity (rankings) or from the damped baseline
(ratings) and marked in the output's ``source`` column; items a user already has are never recommended.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepmine.config import DataConfig
from deepmine.data.interactions import (
    ColumnRoles,
    SeenPairs,
    Vocabulary,
    blank_ids,
    clean_frame,
    id_keys,
    read_interactions,
    sample_negatives,
    strip_blank_ends,
    to_numeric_ratings,
)
from deepmine.data.sources import DataSource, describe, is_csv_file
from deepmine.evaluate.ranking import full_ranking_metrics, sampled_metrics, sampled_ranks
from deepmine.exceptions import ArtifactError, ColumnError, ConfigError, DataError, did_you_mean, warn_user
from deepmine.io_utils import atomic_folder
from deepmine.nn.recommenders import build_recommender
from deepmine.tasks.recommend import Fitted, candidate_scores, clip, torch_threads
from deepmine.tasks.recommend_config import RecommendConfig, build_recommend_config

KIND = "recommender"
FORMAT_VERSION = 1
MANIFEST, WEIGHTS, CHECKSUM = "deepmine.json", "weights.safetensors", "checksum.sha256"
MODEL, POPULARITY, BASELINE = "model", "popularity", "baseline"
USER_CHUNK = 1024


def _one_thread(method):
    """Score with one intra-op thread (see deepmine.tasks.recommend.THREADS)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with torch_threads():
            return method(*args, **kwargs)

    return wrapper


def artifact_kind(path: str | Path) -> str:
    """``"recommender"`` or ``"tabular"`` from an artifact's manifest (``"tabular"`` when it cannot tell)."""
    manifest = Path(path) / MANIFEST
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8")).get("kind") or "tabular")
    except (OSError, json.JSONDecodeError, AttributeError):
        return "tabular"


class Recommender:
    """Recommendations from an interaction log (user, item, optional rating, optional time).

    >>> rec = Recommender(user="user_id", item="movie_id", rating="rating").fit("ratings.csv")
    >>> rec.recommend([1, 2], k=10)          # user, rank, item, score, source
    >>> rec.predict(1, 50)                   # a predicted rating (or a ranking score)

    ``model``: ``auto`` (ratings: MF + NeuMF + MF ensemble; implicit with a time column: GRU4Rec; else NeuMF),
    ``mf``, ``gmf``, ``neumf``, ``two_tower``, ``gru4rec``, or names joined by '+'. ``task``: ``auto`` (rating when
    there is a rating column), ``rating`` or ``ranking``. Other settings are config fields, dotted
    (``**{"trainer.epochs": 5}``), by section (``trainer={"epochs": 5}``) or with ``__`` (``optimizer__lr=1e-3``).
    """

    def __init__(
        self,
        model: str = "auto",
        task: str = "auto",
        *,
        user: str | None = None,
        item: str | None = None,
        rating: str | None = None,
        time: str | None = None,
        seed: int = 42,
        config: Any = None,
        **settings: Any,
    ) -> None:
        self.model = model
        self.task = task
        self.user = user
        self.item = item
        self.rating = rating
        self.time = time
        self.seed = seed
        self.config = config
        self.settings = settings

    # ---- fitting ------------------------------------------------------------------------------------
    def build_config(self) -> RecommendConfig:
        overrides: dict[str, Any] = {}
        for key, value in self.settings.items():
            if isinstance(value, dict):
                overrides.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                overrides[key.replace("__", ".")] = value
        overrides.update({"model.name": self.model, "task": self.task, "seed": self.seed})
        for role in ("user", "item", "rating", "time"):
            if getattr(self, role) is not None:
                overrides[f"columns.{role}"] = getattr(self, role)
        return build_recommend_config(self.config, overrides)

    def fit(
        self,
        data: DataSource,
        *,
        user_features: DataSource | None = None,
        item_features: DataSource | None = None,
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        callbacks=(),
    ) -> Recommender:
        """Train on ``data`` (path, SQL URL or DataFrame); attribute tables feed the two_tower model."""
        from deepmine.tasks.recommend import fit_recommender

        self.fitted_ = fit_recommender(
            data,
            self.build_config(),
            user_features=user_features,
            item_features=item_features,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            callbacks=callbacks,
        )
        return self

    @property
    def _state(self) -> Fitted:
        state = self.__dict__.get("fitted_")
        if state is None:
            from deepmine.exceptions import NotFittedError

            raise NotFittedError("this Recommender is not fitted yet; call fit(data) or Recommender.load(path) first")
        return state

    @property
    def metrics(self) -> dict[str, Any]:
        return self._state.metrics

    @property
    def training(self) -> dict[str, Any]:
        return self._state.training

    @property
    def task_(self) -> str:
        return self._state.task

    @property
    def vocabulary_(self) -> Vocabulary:
        return self._state.vocab

    # ---- answering ---------------------------------------------------------------------------------
    @_one_thread
    def recommend(self, users, k: int = 10, exclude_seen: bool = True, where: str = "the users") -> pd.DataFrame:
        """Top-``k`` items per user: columns user, rank, item, score, source. Items a user already has are left
        out; unknown users (with a warning) get the items of highest baseline rating for rating models (``source``
        = baseline, score on the rating scale), else the most popular items (``source`` = popularity, score =
        training interactions). ``where``: what the warnings call ``users``."""
        state = self._state
        if isinstance(users, str | int | np.integer):
            users = [users]
        users = list(users)
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        index = state.vocab.user_index(id_keys(pd.Series(users, dtype=object)))
        frames: list[pd.DataFrame] = []
        full: list[object] = []
        known = np.flatnonzero(index >= 0)
        top_items: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for start in range(0, len(known), USER_CHUNK):
            rows = known[start : start + USER_CHUNK]
            scores = state.model.score_all(torch.from_numpy(index[rows])).double().numpy()
            for row, user_scores in zip(rows, scores, strict=True):
                top_items[row] = self._top(index[row], user_scores, k, exclude_seen)
        cold_items, cold_scores, cold_source = self._cold_start(k)
        unknown = [user for row, user in enumerate(users) if index[row] < 0]
        if unknown:
            warn_user(
                f"{where}: {_some_ids(unknown, 'unknown user')} did not occur in training; they get the "
                f"{'items with the highest baseline rating' if cold_source == BASELINE else 'most popular items'} "
                f"(source '{cold_source}')"
            )
        for row, user in enumerate(users):
            if index[row] >= 0:
                items, scores = top_items[row]
                source = MODEL
                if not len(items):
                    full.append(user)
                    continue
            else:
                items, scores, source = cold_items, cold_scores, cold_source
            frames.append(
                pd.DataFrame(
                    {
                        "user": [user] * len(items),
                        "rank": np.arange(1, len(items) + 1),
                        "item": state.vocab.items_out(items),
                        "score": scores,
                        "source": source,
                    }
                )
            )
        if full:
            warn_user(f"{where}: {_some_ids(full, 'user')} already have every known item; nothing is left to recommend")
        if not frames:
            return pd.DataFrame({"user": [], "rank": [], "item": [], "score": [], "source": []})
        return pd.concat(frames, ignore_index=True)

    def _cold_start(self, k: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Top-``k`` items for a user never seen: by the damped baseline rating (global mean + item bias, on the
        rating scale) for rating models, else by training interactions (the score is the count)."""
        state = self._state
        if state.task == "rating":
            base = state.baseline
            ratings = np.clip(base["global_mean"] + np.asarray(base["item_bias"], dtype="float64"), *state.rating_range)
            top = np.argsort(-ratings, kind="stable")[:k]
            return top, ratings[top], BASELINE
        top = np.argsort(-state.item_counts, kind="stable")[:k]
        return top, state.item_counts[top].astype("float64"), POPULARITY

    def _top(self, user: int, scores: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        state = self._state
        if exclude_seen:
            scores = scores.copy()
            scores[state.seen.items_of(user)] = -np.inf
        available = int(np.isfinite(scores).sum())
        take = min(k, available)
        if take == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        part = np.argpartition(-scores, take - 1)[:take]
        order = part[np.argsort(-scores[part], kind="stable")]
        shown = scores[order]
        if state.rating_range is not None:
            shown = np.clip(shown, *state.rating_range)
        return order, shown

    def predict(self, user, item) -> float:
        """The predicted rating (rating task) or ranking score of one (user, item) pair."""
        return float(self.predict_pairs([user], [item])["prediction"].iloc[0])

    @_one_thread
    def predict_pairs(
        self, users, items, where: str = "the pairs", columns: tuple[str, str] = ("user", "item")
    ) -> pd.DataFrame:
        """One row per pair: user, item, prediction, source (model, baseline or popularity). A missing user or item
        is an error naming its row; users and items never seen in training are counted in one warning."""
        state = self._state
        users, items = list(users), list(items)
        if len(users) != len(items):
            raise DataError(f"got {len(users)} users but {len(items)} items; pass one item per user")
        for values, role, column in ((users, "user", columns[0]), (items, "item", columns[1])):
            require_ids(values, role, column, where)
        u = state.vocab.user_index(id_keys(pd.Series(users, dtype=object)))
        i = state.vocab.item_index(id_keys(pd.Series(items, dtype=object)))
        values, source = self._predict_index(u, i)
        self._warn_unknown_pairs(users, items, u, i, where)
        return pd.DataFrame({"user": users, "item": items, "prediction": values, "source": source})

    def _warn_unknown_pairs(self, users: list, items: list, u: np.ndarray, i: np.ndarray, where: str) -> None:
        """One warning line: how many unknown users / items, a few of each, and what their rows got instead."""
        parts = []
        for ids, index, role in ((users, u, "user"), (items, i, "item")):
            unknown = [ids[row] for row in np.flatnonzero(index < 0)]
            if unknown:
                parts.append(_some_ids(unknown, f"unknown {role}"))
        if not parts:
            return
        rows = int(((u < 0) | (i < 0)).sum())
        answer = (
            "the damped baseline rating (source 'baseline')"
            if self._state.task == "rating"
            else "the item's training interaction count (source 'popularity')"
        )
        warn_user(f"{where}: {' and '.join(parts)} did not occur in training; their {rows} row(s) get {answer}")

    def _predict_index(self, u: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        state = self._state
        known = (u >= 0) & (i >= 0)
        values = np.zeros(len(u), dtype="float64")
        if known.any():
            scores = state.model.score_pairs(torch.from_numpy(u[known]), torch.from_numpy(i[known])).double()
            values[known] = clip(scores, state.rating_range).numpy()
        source = np.where(known, MODEL, BASELINE if state.task == "rating" else POPULARITY).astype(object)
        if state.task == "rating":
            base = state.baseline
            fallback = base["global_mean"] + np.where(u >= 0, base["user_bias"][np.maximum(u, 0)], 0.0)
            fallback += np.where(i >= 0, base["item_bias"][np.maximum(i, 0)], 0.0)
            values[~known] = np.clip(fallback[~known], *state.rating_range)
        else:
            counts = np.where(i >= 0, state.item_counts[np.maximum(i, 0)], 0)
            values[~known] = counts[~known]
        return values, source

    # ---- reading new data ------------------------------------------------------------------------------
    def _read(self, data: DataSource, read: DataConfig | None) -> tuple[pd.DataFrame, ColumnRoles, str]:
        """A table with the training column names, or — when either file was headerless — the columns at the
        training positions."""
        state = self._state
        where = describe(data)
        frame = read_interactions(data, read or DataConfig())
        trained = state.roles
        names = {"user": trained.user, "item": trained.item, "rating": trained.rating, "time": trained.time}
        columns = list(frame.columns)
        headerless = all(str(c).startswith("column_") for c in columns)
        # a model trained on a headerless file knows its columns by position only, so it reads them so again
        positional = headerless or all(str(n).startswith("column_") for n in names.values() if n is not None)
        found: dict[str, str | None] = {}
        for role, name in names.items():
            if name in columns:
                found[role] = name
            elif name is not None and positional and state.positions.get(role, len(columns)) < len(columns):
                found[role] = columns[state.positions[role]]
            else:
                found[role] = None
        for role in ("user",):
            if found[role] is None:
                raise ColumnError(
                    f"{where} has no {role} column '{names[role]}'{did_you_mean(names[role], columns)}; "
                    f"columns: {columns}"
                )
        return frame, ColumnRoles(found["user"], found["item"] or "", found["rating"], found["time"]), where

    def predict_frame(self, data: DataSource, read: DataConfig | None = None, k: int = 10) -> pd.DataFrame:
        """With user and item columns: a prediction per row. With only a user column: top-``k`` per user."""
        frame, roles, where = self._read(data, read)
        if roles.item:
            users, items = frame[roles.user].tolist(), frame[roles.item].tolist()
            return self.predict_pairs(users, items, where, (roles.user, roles.item))
        users, first_row = frame[roles.user], 1
        if frame.shape[1] == 1 and is_csv_file(data):  # a list of user ids: blank lines around it are no users
            users = strip_blank_ends(users)
            first_row = int(users.index[0]) + 1  # a CSV's rows are numbered 0, 1 ...
        require_ids(users.tolist(), "user", roles.user, where, first_row)
        return self.recommend(list(dict.fromkeys(users.tolist())), k, where=where)

    # ---- evaluation ------------------------------------------------------------------------------------------
    @_one_thread
    def evaluate(self, data: DataSource, read: DataConfig | None = None) -> dict[str, Any]:
        """Rating task with ratings in ``data``: rmse, mae. Otherwise ranking: hr_at_10, ndcg_at_10, mrr against
        sampled negatives, and recall_at_10 / full_ndcg_at_10 over the whole catalogue. Counts of unknown users and
        items come along."""
        state = self._state
        frame, roles, where = self._read(data, read)
        if not roles.item:
            raise ColumnError(f"{where} has no item column '{state.roles.item}'; evaluate needs (user, item) rows")
        if state.task == "rating" and roles.rating is not None:
            return self._evaluate_ratings(frame, roles, where)
        return self._evaluate_ranking(frame, roles, where)

    def _evaluate_ratings(self, frame: pd.DataFrame, roles: ColumnRoles, where: str) -> dict[str, Any]:
        state = self._state
        frame = clean_frame(frame, roles, where)
        truth = to_numeric_ratings(frame[roles.rating], roles.rating, where)
        u = state.vocab.user_index(id_keys(frame[roles.user]))
        i = state.vocab.item_index(id_keys(frame[roles.item]))
        pred, _ = self._predict_index(u, i)
        lo, hi = state.rating_range
        outside = int(((truth < lo) | (truth > hi)).sum())
        if outside:
            warn_user(
                f"{where}: {outside} rating(s) lie outside the range seen in training [{lo:g}, {hi:g}]; predictions "
                "stay inside that range, so those rows add to the error"
            )
        err = pred - truth
        return {
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "rows": len(frame),
            "unknown_users": int((u < 0).sum()),
            "unknown_items": int((i < 0).sum()),
            "ratings_outside_range": outside,
        }

    def _evaluate_ranking(self, frame: pd.DataFrame, roles: ColumnRoles, where: str) -> dict[str, Any]:
        state = self._state
        config = state.config
        k, n_neg = config.evaluate.k, config.evaluate.negatives
        needed = frame[[roles.user, roles.item]].notna().all(axis=1)
        frame = frame[needed]
        u = state.vocab.user_index(id_keys(frame[roles.user]))
        i = state.vocab.item_index(id_keys(frame[roles.item]))
        pairs = pd.DataFrame({"u": u, "i": i, "user": id_keys(frame[roles.user]), "item": id_keys(frame[roles.item])})
        pairs = pairs.drop_duplicates(["user", "item"]).reset_index(drop=True)
        if not len(pairs):
            raise DataError(f"{where} holds no (user, item) rows to evaluate")
        u, i = pairs["u"].to_numpy(), pairs["i"].to_numpy()
        known_i = i >= 0
        seen_keys = np.concatenate(
            [state.seen.keys, (u[(u >= 0) & known_i] * state.seen.n_items + i[(u >= 0) & known_i])]
        )
        exclude = SeenPairs.from_keys(np.unique(seen_keys), state.seen.n_users, state.seen.n_items)
        rng = np.random.default_rng(config.seed)
        negatives = sample_negatives(np.maximum(u, 0), exclude, n_neg, rng)
        for row in np.flatnonzero(u < 0):  # unknown users: negatives from items they have not got in the test
            mine = set(i[(pairs["user"] == pairs["user"][row]).to_numpy()].tolist())
            pool = np.array([x for x in range(state.seen.n_items) if x not in mine])
            negatives[row] = -1
            take = min(n_neg, len(pool))
            negatives[row, :take] = rng.choice(pool, take, replace=False) if take else []
        candidates = np.concatenate([np.maximum(i, 0)[:, None], negatives], axis=1)
        scores = np.full(candidates.shape, -np.inf)
        model_rows = u >= 0
        if model_rows.any():
            scores[model_rows] = candidate_scores(
                state.model, torch.from_numpy(u[model_rows]), torch.from_numpy(candidates[model_rows])
            )
        cold = ~model_rows
        if cold.any():
            pop = state.item_counts.astype("float64")[np.maximum(candidates[cold], 0)]
            scores[cold] = np.where(candidates[cold] >= 0, pop, -np.inf)
        valid = negatives >= 0
        ranks = sampled_ranks(scores[:, 0], scores[:, 1:], valid)
        ranks[~known_i] = n_neg  # an item never seen in training cannot be ranked: a miss
        metrics: dict[str, Any] = sampled_metrics(ranks, k)
        metrics.update(self._full_ranking(u, i, k))
        metrics.update(
            {
                "rows": len(pairs),
                "users": int(pairs["user"].nunique()),
                "unknown_users": int((u < 0).sum()),
                "unknown_items": int((~known_i).sum()),
                "negatives": n_neg,
            }
        )
        return metrics

    def _full_ranking(self, u: np.ndarray, i: np.ndarray, k: int) -> dict[str, float]:
        state = self._state
        rows = (u >= 0) & (i >= 0)
        if not rows.any():
            return {}
        test = pd.Series(i[rows]).groupby(u[rows]).apply(lambda s: s.to_numpy())
        users = test.index.to_numpy().copy()
        top: list[np.ndarray] = []
        for start in range(0, len(users), USER_CHUNK):
            chunk = users[start : start + USER_CHUNK]
            scores = state.model.score_all(torch.from_numpy(chunk)).double().numpy()
            top.extend(self._top(user, s, k, True)[0] for user, s in zip(chunk, scores, strict=True))
        return full_ranking_metrics(top, list(test.to_numpy()), k)

    # ---- persistence -------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the artifact folder atomically; return its path."""
        from deepmine.artifact import _json_safe, write_checksums
        from deepmine.versions import package_versions

        state = self._state
        path = Path(path)
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": KIND,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "task": state.task,
            "config": state.config.model_dump(mode="json"),
            "members": [m.model_dump(mode="json") for m in state.members],
            "columns": {
                "user": state.roles.user,
                "item": state.roles.item,
                "rating": state.roles.rating,
                "time": state.roles.time,
                "positions": state.positions,
            },
            "vocabulary": state.vocab.to_dict(),
            "rating_range": list(state.rating_range) if state.rating_range else None,
            "global_mean": state.baseline["global_mean"],
            "model": state.spec,
            "side_features": state.side_features,
            "metrics": state.metrics,
            "history": state.history,
            "training": state.training,
        }
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}
        tensors.update(
            {
                "state.seen_keys": torch.from_numpy(state.seen.keys.astype(np.int64)),
                "state.item_counts": torch.from_numpy(state.item_counts.astype(np.int64)),
                "state.user_bias": torch.from_numpy(np.asarray(state.baseline["user_bias"], dtype=np.float64)),
                "state.item_bias": torch.from_numpy(np.asarray(state.baseline["item_bias"], dtype=np.float64)),
            }
        )
        with atomic_folder(path) as tmp:
            save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt", "deepmine_format": str(FORMAT_VERSION)})
            (tmp / MANIFEST).write_text(json.dumps(_json_safe(manifest), indent=2, allow_nan=False), encoding="utf-8")
            write_checksums(tmp, (MANIFEST, WEIGHTS))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load an artifact written by :meth:`save` (checksums verified; nothing unpickled)."""
        from deepmine.artifact import read_manifest

        path = Path(path)
        manifest = read_manifest(path, KIND, "deepmine recommend --out")
        try:
            tensors = load_file(str(path / WEIGHTS))
            model = build_recommender(manifest["model"])
            model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        except (SafetensorError, RuntimeError, KeyError) as err:
            raise ArtifactError(
                f"artifact '{path}': weights do not fit the model ({str(err).splitlines()[0]})"
            ) from err
        model.eval()
        config = RecommendConfig.model_validate(manifest["config"])
        vocab = Vocabulary.from_dict(manifest["vocabulary"])
        cols = manifest["columns"]
        rating_range = tuple(manifest["rating_range"]) if manifest["rating_range"] else None
        fitted = Fitted(
            config=config,
            task=manifest["task"],
            roles=ColumnRoles(cols["user"], cols["item"], cols["rating"], cols["time"]),
            positions=cols["positions"],
            vocab=vocab,
            model=model,
            spec=manifest["model"],
            members=[RecommendConfig.model_validate(m) for m in manifest["members"]],
            seen=SeenPairs.from_keys(tensors["state.seen_keys"].numpy(), vocab.n_users, vocab.n_items),
            item_counts=tensors["state.item_counts"].numpy(),
            baseline={
                "global_mean": manifest["global_mean"],
                "user_bias": tensors["state.user_bias"].numpy(),
                "item_bias": tensors["state.item_bias"].numpy(),
            },
            rating_range=rating_range,
            side_features=manifest.get("side_features") or {},
            metrics=manifest.get("metrics") or {},
            history=manifest.get("history") or [],
            training=manifest.get("training") or {},
        )
        rec = cls(model=config.model.name, task=fitted.task, seed=config.seed, config=config)
        rec.fitted_ = fitted
        return rec

    def __repr__(self) -> str:
        state = self.__dict__.get("fitted_")
        if state is None:
            return f"Recommender(model={self.model!r}, task={self.task!r})"
        return (
            f"Recommender(task={state.task!r}, model={state.config.model.name!r}, "
            f"users={state.vocab.n_users}, items={state.vocab.n_items})"
        )


def _some_ids(ids: list, noun: str) -> str:
    """``"2 unknown user(s) (7, 8)"``: how many distinct ids, and the first five of them."""
    distinct = list(dict.fromkeys(ids))
    shown = ", ".join(map(str, distinct[:5])) + (" ..." if len(distinct) > 5 else "")
    return f"{len(distinct)} {noun}(s) ({shown})"


def require_ids(values: list, role: str, column: str, where: str, first_row: int = 1) -> None:
    """Refuse a missing or blank id: its row could only get a guess that looks like an answer. ``first_row``: the
    row number of ``values[0]`` in ``where``."""
    blank = np.flatnonzero(blank_ids(pd.Series(values, dtype=object)))
    if len(blank):
        more = f" (and {len(blank) - 1} more row(s))" if len(blank) > 1 else ""
        raise DataError(
            f"{where} row {blank[0] + first_row}{more} has no {role} in column '{column}'; every row needs one: "
            "fill it in or drop the row"
        )


def load_recommender(path: str | Path) -> Recommender:
    return Recommender.load(path)
