"""Recommendation: read an interaction log, hold out validation interactions, train each model (or ensemble
member) with the shared Trainer (early stopping on validation RMSE or NDCG@10, checkpoints, progress), optionally
retrain on everything for the best epoch count, and return the fitted state that
:class:`~deepmine.recommender.Recommender` answers from.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmine.data.interactions import (
    ColumnRoles,
    Interactions,
    SeenPairs,
    Vocabulary,
    build_vocabulary,
    clean_frame,
    encode,
    encode_side_features,
    histories,
    holdout_last,
    infer_columns,
    merge_duplicates,
    random_holdout,
    read_interactions,
    read_side_table,
    sample_negatives,
)
from deepmine.data.sources import DataSource, describe
from deepmine.evaluate.ranking import sampled_metrics, sampled_ranks
from deepmine.exceptions import ConfigError, DataError, DeepmineWarning
from deepmine.nn.recommenders import (
    LOSSES,
    Pairwise,
    Penalized,
    RecEnsemble,
    RecModel,
    build_recommender,
    get_recommender_builder,
)
from deepmine.tasks.recommend_config import RecommendConfig, auto_model, member_names, resolve
from deepmine.train.callbacks import Callback
from deepmine.train.seeding import seed_everything
from deepmine.train.trainer import Trainer

MIN_INTERACTIONS = 4
THREADS = 1  # batches of embedding look-ups are too small to gain from more; on a busy CPU more are 10-40x slower


@contextmanager
def torch_threads(count: int = THREADS) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


SHRINK = 10.0  # damping of the baseline biases (as in Koren's baseline predictor)


@dataclass
class Fitted:
    """Everything a trained recommender needs to answer and to be saved."""

    config: RecommendConfig
    task: str
    roles: ColumnRoles
    positions: dict[str, int]
    vocab: Vocabulary
    model: RecModel
    spec: dict[str, Any]
    members: list[RecommendConfig]
    seen: SeenPairs
    item_counts: np.ndarray
    baseline: dict[str, Any]
    rating_range: tuple[float, float] | None
    side_features: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[list[dict[str, float]]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)


# ---- negatives, resampled every epoch inside the Trainer's own tensors ----------------------------------
class NegativeSampler(Callback):
    """Fills ``slot`` (a tensor the Trainer batches from) with fresh negatives for ``users`` each epoch."""

    def __init__(self, users: torch.Tensor, slot: torch.Tensor, seen: SeenPairs, seed: int) -> None:
        self.users = users.numpy()
        self.slot = slot
        self.seen = seen
        self.generator = torch.Generator().manual_seed(seed)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        n_items = self.seen.n_items
        draw = torch.randint(0, n_items, (len(self.users),), generator=self.generator).numpy()
        bad = self.seen.contains(self.users, draw)
        for _ in range(20):
            if not bad.any():
                break
            redraw = torch.randint(0, n_items, (int(bad.sum()),), generator=self.generator).numpy()
            draw[bad] = redraw
            bad = self.seen.contains(self.users, draw)
        if bad.any():  # users who have nearly every item: draw from what is left
            rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=self.generator)))
            for row in np.flatnonzero(bad):
                free = np.setdiff1d(np.arange(n_items), self.seen.items_of(self.users[row]))
                draw[row] = rng.choice(free)
        self.slot.copy_(torch.from_numpy(draw))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


# ---- inputs per loss --------------------------------------------------------------------------------------
def _tensor(values: np.ndarray, dtype=torch.long) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(dtype)


def sequence_chunks(user_histories: list[np.ndarray], length: int) -> torch.Tensor:
    """Windows of ``length + 1`` item ids (+1; 0 pads on the left), cut from each history's end backwards."""
    rows: list[np.ndarray] = []
    for items in user_histories:
        tokens = items + 1
        for end in range(len(tokens), 1, -length):
            rows.append(tokens[max(0, end - length - 1) : end])
    if not rows:
        raise DataError("no user has two or more interactions in order; a session model needs histories")
    return left_pad(rows, length + 1)


def left_pad(rows: list[np.ndarray], length: int) -> torch.Tensor:
    out = np.zeros((len(rows), length), dtype=np.int64)
    for r, row in enumerate(rows):
        row = row[-length:]
        if len(row):
            out[r, length - len(row) :] = row
    return torch.from_numpy(out)


def history_buffer(log: Interactions, n_users: int, length: int) -> torch.Tensor:
    return left_pad([items + 1 for items in histories(log, n_users)], length)


def _training_inputs(
    loss: str, train: Interactions, seen: SeenPairs, member: RecommendConfig, n_users: int, seed: int
) -> tuple[list[torch.Tensor], torch.Tensor, list[Callback]]:
    users, items = _tensor(train.users), _tensor(train.items)
    if loss == "mse":
        return [users, items], _tensor(train.ratings, torch.float32), []
    has_free = _tensor(seen.counts()[train.users] < seen.n_items, torch.bool)
    if loss == "bpr":
        users, items = users[has_free], items[has_free]
        if not len(users):
            raise DataError("every user has interacted with every item; there is nothing to rank")
        slot = torch.zeros(len(users), dtype=torch.long)
        return [users, items, slot], torch.zeros(len(users)), [NegativeSampler(users, slot, seen, seed)]
    if loss == "bce":
        neg_users = users[has_free].repeat(member.model.negatives)
        slot = torch.zeros(len(neg_users), dtype=torch.long)
        all_items = torch.cat([items, slot])
        sampler = NegativeSampler(neg_users, all_items[len(items) :], seen, seed)
        target = torch.cat([torch.ones(len(users)), torch.zeros(len(neg_users))])
        return [torch.cat([users, neg_users]), all_items], target, [sampler]
    chunks = sequence_chunks(histories(train, n_users), member.model.max_history)
    return [chunks[:, :-1].contiguous()], chunks[:, 1:].contiguous(), []


# ---- validation -------------------------------------------------------------------------------------------
def clip(values: torch.Tensor, rating_range: tuple[float, float] | None) -> torch.Tensor:
    return values if rating_range is None else values.clamp(*rating_range)


def rating_evaluator(model: RecModel, rating_range: tuple[float, float]):
    def evaluate(_wrapper, inputs: Sequence[torch.Tensor], target: torch.Tensor) -> dict[str, float]:
        pred = clip(model.score_pairs(inputs[0], inputs[1]).double(), rating_range)
        err = pred - target.double()
        return {"rmse": float(err.pow(2).mean().sqrt()), "mae": float(err.abs().mean())}

    return evaluate


def candidate_scores(model: RecModel, users: torch.Tensor, candidates: torch.Tensor) -> np.ndarray:
    """(n, 1 + negatives) scores; column 0 is the held-out item. Padding (-1) gets -inf."""
    flat = candidates.clamp(min=0)
    scores = model.score_pairs(users.repeat_interleave(candidates.shape[1]), flat.reshape(-1)).view(candidates.shape)
    scores = scores.double().numpy().copy()
    scores[(candidates < 0).numpy()] = -np.inf
    return scores


def ranking_evaluator(model: RecModel, k: int):
    def evaluate(_wrapper, inputs: Sequence[torch.Tensor], target: torch.Tensor) -> dict[str, float]:
        scores = candidate_scores(model, inputs[0], inputs[1])
        return sampled_metrics(sampled_ranks(scores[:, 0], scores[:, 1:]), k)

    return evaluate


# ---- the run ----------------------------------------------------------------------------------------------
def _fingerprint(train: Interactions, config: RecommendConfig, stage: str) -> str:
    settings = config.model_dump(mode="json")
    settings["trainer"].pop("progress", None)
    settings.pop("tracking", None)  # where the run is recorded does not change training
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode() + stage.encode())
    for array in (train.users, train.items, train.ratings, train.times):
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def baseline_biases(log: Interactions, n_users: int, n_items: int) -> dict[str, Any]:
    """Damped global mean + item bias + user bias: the answer for users or items the model never saw."""
    if log.ratings is None:
        return {"global_mean": 0.0, "user_bias": np.zeros(n_users), "item_bias": np.zeros(n_items)}
    mu = float(log.ratings.mean())
    resid = log.ratings - mu
    item_bias = np.bincount(log.items, resid, n_items) / (np.bincount(log.items, minlength=n_items) + SHRINK)
    resid = resid - item_bias[log.items]
    user_bias = np.bincount(log.users, resid, n_users) / (np.bincount(log.users, minlength=n_users) + SHRINK)
    return {"global_mean": mu, "user_bias": user_bias, "item_bias": item_bias}


def load_log(
    data: DataSource, config: RecommendConfig
) -> tuple[ColumnRoles, dict[str, int], Vocabulary, Interactions, str]:
    """Read, find columns, clean, encode and merge duplicates; return the roles, vocabulary and log."""
    where = describe(data)
    frame = read_interactions(data, config.data)
    cols = config.columns
    roles = infer_columns(frame, cols.user, cols.item, cols.rating, cols.time, where)
    task = config.task if config.task != "auto" else ("rating" if roles.rating is not None else "ranking")
    if task == "rating" and roles.rating is None:
        raise ConfigError(
            f"rating prediction needs a rating column, and none was found in {where} (columns: {list(frame.columns)}); "
            "name it with --rating COL, or use --task ranking for implicit feedback"
        )
    if task == "ranking":
        roles = ColumnRoles(roles.user, roles.item, None, roles.time)
    positions = roles.positions(frame)
    frame = clean_frame(frame, roles, where)
    vocab = build_vocabulary(frame, roles)
    log = merge_duplicates(encode(frame, roles, vocab, where), config.duplicates, where)
    if len(log) < MIN_INTERACTIONS:
        raise DataError(f"{where} holds {len(log)} interaction(s); at least {MIN_INTERACTIONS} are needed")
    if vocab.n_items < 2:
        raise DataError(f"{where} mentions a single item; recommending needs at least two")
    return roles, positions, vocab, log, task


def _side(
    path: DataSource | None, config: RecommendConfig, key: str | None, ids: list[str], kind: str
) -> tuple[np.ndarray | None, dict[str, Any]]:
    if path is None:
        return None, {}
    frame, key_col = read_side_table(path, config.data, key, kind)
    features = encode_side_features(frame, key_col, ids, describe(path))
    info = {"source": describe(path), "key": key_col, "used": features.used, "dropped": features.dropped}
    return features.matrix, info


def fit_recommender(*args, **kwargs) -> Fitted:
    """Load → split → train every member (Trainer) → [refit on all] → validation metrics → fitted state."""
    with torch_threads():
        return _fit_recommender(*args, **kwargs)


def _fit_recommender(
    data: DataSource,
    config: RecommendConfig,
    *,
    user_features: DataSource | None = None,
    item_features: DataSource | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> Fitted:
    started = time.perf_counter()
    where = describe(data)
    roles, positions, vocab, log, task = load_log(data, config)
    n_users, n_items = vocab.n_users, vocab.n_items
    name = config.model.name if config.model.name != "auto" else auto_model(task, roles.time is not None)
    names = member_names(name)
    if not names:
        raise ConfigError(f"model.name '{config.model.name}' names no model; try mf, neumf or gru4rec")
    config = config.model_copy(update={"task": task, "model": config.model.model_copy(update={"name": name})})
    for member in names:
        get_recommender_builder(member)  # an unknown name fails here, with a suggestion
    members = [resolve(config, task, member) for member in names]
    user_matrix, user_info = _side(user_features, config, config.columns.user_key, vocab.user_ids, "user")
    item_matrix, item_info = _side(item_features, config, config.columns.item_key, vocab.item_ids, "item")
    if (user_matrix is not None or item_matrix is not None) and "two_tower" not in names:
        warnings.warn(
            "user/item attributes are used by the two_tower model only; add --model two_tower to use them",
            DeepmineWarning,
            stacklevel=2,
        )

    rng = np.random.default_rng(config.seed)
    if task == "rating":
        train_idx, valid_idx = random_holdout(len(log), config.trainer.valid_fraction, rng)
    else:
        train_idx, valid_idx = holdout_last(log, rng)
    if not len(valid_idx) or not len(train_idx):
        raise DataError(f"{where} is too small to hold out validation interactions; add more rows")
    train, valid = log.subset(train_idx), log.subset(valid_idx)
    seen_all = SeenPairs(log.users, log.items, n_users, n_items)
    seen_train = SeenPairs(train.users, train.items, n_users, n_items)
    rating_range = (float(log.ratings.min()), float(log.ratings.max())) if task == "rating" else None
    global_mean = float(train.ratings.mean()) if task == "rating" else 0.0

    valid_users = _tensor(valid.users)
    if task == "rating":
        valid_inputs = [valid_users, _tensor(valid.items)]
        valid_target = _tensor(valid.ratings, torch.float64)
    else:
        negatives = sample_negatives(
            valid.users, seen_all, config.evaluate.negatives, np.random.default_rng(config.seed)
        )
        candidates = np.concatenate([valid.items[:, None], negatives], axis=1)
        valid_inputs = [valid_users, _tensor(candidates)]
        valid_target = torch.zeros(len(valid))
    refit = config.refit if config.refit is not None else task == "rating"

    trained: list[RecModel] = []
    specs: list[dict[str, Any]] = []
    histories_out: list[list[dict[str, float]]] = []
    valid_scores: list[torch.Tensor | np.ndarray] = []
    epochs_run: list[int] = []
    for index, member in enumerate(members):
        spec = {
            **member.model.model_dump(),
            "task": task,
            "n_users": n_users,
            "n_items": n_items,
            "global_mean": global_mean,
            "user_width": 0 if user_matrix is None else user_matrix.shape[1],
            "item_width": 0 if item_matrix is None else item_matrix.shape[1],
        }
        seed = config.seed + index
        stage_dir = None if checkpoint_dir is None else checkpoint_dir / f"member-{index}"
        model, history, best_epoch = _train_member(
            spec, member, train, seen_train, valid_inputs, valid_target, rating_range,
            user_matrix, item_matrix, seed, stage_dir, resume, callbacks, early_stopping=True,
        )  # fmt: skip
        valid_scores.append(_score_valid(model, task, valid_inputs))
        histories_out.append(history)
        epochs_run.append(len(history))
        if refit:
            fixed = member.model_copy(
                update={
                    "trainer": member.trainer.model_copy(update={"epochs": max(1, best_epoch), "early_stopping": False})
                }
            )
            refit_dir = None if checkpoint_dir is None else checkpoint_dir / f"member-{index}-refit"
            model, refit_history, _ = _train_member(
                spec, fixed, log, seen_all, None, None, rating_range,
                user_matrix, item_matrix, seed, refit_dir, resume, callbacks, early_stopping=False,
            )  # fmt: skip
            histories_out[-1] = history + [{**h, "refit": 1.0} for h in refit_history]
        if model.sequential:
            model.history.copy_(history_buffer(log, n_users, member.model.max_history))
        trained.append(model)
        specs.append(spec)

    model = trained[0] if len(trained) == 1 else RecEnsemble(trained)
    spec = specs[0] if len(specs) == 1 else {"name": name, "task": task, "members": specs}
    metrics = {"valid": _valid_metrics(task, valid_scores, valid_target, rating_range, config.evaluate.k)}
    metrics["valid"]["rows"] = len(valid)
    baseline = baseline_biases(log, n_users, n_items)
    training = {
        "rows": len(train),
        "valid_rows": len(valid),
        "interactions": len(log),
        "users": n_users,
        "items": n_items,
        "epochs": max(epochs_run),  # the longest member's run, as a table ensemble counts its one run
        "epochs_per_member": epochs_run,
        "refit": bool(refit),
        "seconds": round(time.perf_counter() - started, 3),
        "source": where,
    }
    return Fitted(
        config=config,
        task=task,
        roles=roles,
        positions=positions,
        vocab=vocab,
        model=model,
        spec=spec,
        members=members,
        seen=seen_all,
        item_counts=np.bincount(log.items, minlength=n_items).astype(np.int64),
        baseline=baseline,
        rating_range=rating_range,
        side_features={k: v for k, v in (("user", user_info), ("item", item_info)) if v},
        metrics=metrics,
        history=histories_out,
        training=training,
    )


def _score_valid(model: RecModel, task: str, valid_inputs: list[torch.Tensor]):
    if task == "rating":
        return model.score_pairs(valid_inputs[0], valid_inputs[1]).double()
    return candidate_scores(model, valid_inputs[0], valid_inputs[1])


def _valid_metrics(task, scores, target, rating_range, k) -> dict[str, float]:
    if task == "rating":
        pred = clip(torch.stack(scores).mean(0), rating_range)
        err = pred - target
        return {"rmse": float(err.pow(2).mean().sqrt()), "mae": float(err.abs().mean())}
    mean = np.mean(np.stack(scores), axis=0)
    return sampled_metrics(sampled_ranks(mean[:, 0], mean[:, 1:]), k)


def _train_member(
    spec: dict[str, Any],
    member: RecommendConfig,
    train: Interactions,
    seen: SeenPairs,
    valid_inputs: list[torch.Tensor] | None,
    valid_target: torch.Tensor | None,
    rating_range: tuple[float, float] | None,
    user_matrix: np.ndarray | None,
    item_matrix: np.ndarray | None,
    seed: int,
    checkpoint_dir: Path | None,
    resume: bool,
    callbacks: Sequence[Callback],
    early_stopping: bool,
) -> tuple[RecModel, list[dict[str, float]], int]:
    generator = seed_everything(seed)
    model = build_recommender(spec)
    if user_matrix is not None and hasattr(model, "user_features"):
        model.user_features.copy_(torch.from_numpy(user_matrix))
    if item_matrix is not None and hasattr(model, "item_features"):
        model.item_features.copy_(torch.from_numpy(item_matrix))
    loss = member.model.loss
    if model.sequential:
        model.history.copy_(history_buffer(train, spec["n_users"], member.model.max_history))
    inputs, target, samplers = _training_inputs(loss, train, seen, member, spec["n_users"], seed)
    wrapper = Pairwise(model) if loss == "bpr" else model
    task = spec["task"]
    evaluate = (
        rating_evaluator(model, rating_range) if task == "rating" else ranking_evaluator(model, member.evaluate.k)
    )
    trainer_config = member.trainer.model_copy(
        update={"early_stopping": early_stopping and member.trainer.early_stopping}
    )
    trainer = Trainer(
        wrapper,
        Penalized(LOSSES[loss], model),
        trainer_config,
        member.optimizer,
        generator=generator,
        evaluate=evaluate if valid_inputs is not None else None,
        callbacks=[*samplers, *callbacks],
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        fingerprint=_fingerprint(train, member, str(checkpoint_dir)) if checkpoint_dir is not None else "",
    )
    history = trainer.fit(inputs, target, valid_inputs, valid_target)
    best = trainer.best_epoch + 1 if trainer.best_epoch >= 0 else len(history)
    model.eval()
    return model, history, best
