"""Recommendation run configuration: one pydantic model, YAML in, ``--set key=value`` overrides.

Fields left at ``None`` / ``"auto"`` are filled per model and task by :func:`resolve` (a rating MF wants other
settings than a GRU4Rec session model); the resolved values are what the artifact records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from deepmine.config import DataConfig, OptimizerConfig, TrackingConfig, TrainerConfig, _Section, build_config
from deepmine.exceptions import ConfigError

TASKS = ("rating", "ranking")
Loss = Literal["auto", "mse", "bce", "bpr", "softmax"]


class InteractionColumns(_Section):
    """Which columns hold the user, the item, the rating and the time (inferred when unset)."""

    user: str | None = None
    item: str | None = None
    rating: str | None = Field(None, description="Explicit rating column; 'none' ignores any rating column.")
    time: str | None = Field(None, description="Timestamp column (orders each user's history); 'none' = no time.")
    user_key: str | None = Field(None, description="Key column of the user attribute table (default: its first).")
    item_key: str | None = Field(None, description="Key column of the item attribute table (default: its first).")


class RecModelConfig(_Section):
    """The recommender network. ``name`` is one registered model or several joined by '+' (an ensemble)."""

    name: str = Field("auto", description="auto, mf, gmf, neumf, two_tower, gru4rec, or an ensemble like mf+neumf.")
    factors: int | None = Field(None, ge=1, description="Embedding size of users and items.")
    hidden: list[int] | None = Field(None, description="MLP layers (neumf, two_tower) or GRU size (gru4rec).")
    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    l2: float | None = Field(None, ge=0.0, description="L2 penalty on the embeddings a batch uses.")
    bias_l2: float | None = Field(None, ge=0.0, description="L2 penalty on the user and item biases a batch uses.")
    loss: Loss = Field("auto", description="mse (ratings); bce or bpr with sampled negatives; softmax (gru4rec).")
    negatives: int = Field(4, ge=1, description="Sampled negatives per positive for bce.")
    max_history: int = Field(100, ge=2, description="Items of a user's history a session model reads.")


class RecOptimizerConfig(OptimizerConfig):
    name: Literal["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"] = "adam"
    lr: float | None = Field(None, gt=0, description="Learning rate; per model when unset.")
    weight_decay: float = Field(0.0, ge=0, description="L2 on every weight (embeddings use model.l2).")


class RecTrainerConfig(TrainerConfig):
    epochs: int = Field(40, ge=1)
    batch_size: int | Literal["full", "auto"] = "auto"
    patience: int | None = Field(None, ge=1)
    valid_fraction: float = Field(0.05, gt=0, lt=0.9, description="Ratings held out for early stopping.")


class RecEvalConfig(_Section):
    """How ranking quality is measured."""

    k: int = Field(10, ge=1, description="Cut-off of HR@K, NDCG@K and Recall@K.")
    negatives: int = Field(99, ge=1, description="Sampled negatives ranked against each held-out item.")


class RecommendConfig(_Section):
    """Everything one recommendation run needs. Every field can be set with ``--set section.key=value``."""

    task: Literal["auto", "rating", "ranking"] = "auto"
    seed: int = 42
    duplicates: Literal["last", "mean", "error"] = Field(
        "last", description="Repeated (user, item) rows: keep the latest, average the ratings, or stop."
    )
    refit: bool | None = Field(None, description="Retrain on all data for the best epoch count; auto = ratings.")
    data: DataConfig = Field(default_factory=DataConfig)
    columns: InteractionColumns = Field(default_factory=InteractionColumns)
    model: RecModelConfig = Field(default_factory=RecModelConfig)
    optimizer: RecOptimizerConfig = Field(default_factory=RecOptimizerConfig)
    trainer: RecTrainerConfig = Field(default_factory=RecTrainerConfig)
    evaluate: RecEvalConfig = Field(default_factory=RecEvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


KEY_ALIASES = {
    "trainer.lr": "optimizer.lr",
    "trainer.optimizer": "optimizer.name",
    "trainer.weight_decay": "optimizer.weight_decay",
    "module.name": "model.name",
}

# Per (model, task) defaults for the fields left unset. Measured on MovieLens-100k (see benchmarks/).
_RATING = {"lr": 3e-3, "batch_size": 512, "patience": 3, "l2": 0.1, "bias_l2": 0.005, "loss": "mse"}
DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("mf", "rating"): {**_RATING, "factors": 64},
    ("gmf", "rating"): {**_RATING, "factors": 64},
    ("neumf", "rating"): {**_RATING, "factors": 64, "hidden": [64, 32], "dropout": 0.2},
    ("two_tower", "rating"): {**_RATING, "factors": 64, "hidden": [64], "dropout": 0.2},
    ("mf", "ranking"): {"lr": 1e-3, "batch_size": 256, "patience": 4, "factors": 64, "loss": "bpr"},
    ("gmf", "ranking"): {"lr": 1e-3, "batch_size": 256, "patience": 4, "factors": 32, "loss": "bce"},
    ("neumf", "ranking"): {
        "lr": 1e-3,
        "batch_size": 256,
        "patience": 4,
        "factors": 32,
        "hidden": [64, 32, 16],
        "loss": "bce",
    },
    ("two_tower", "ranking"): {
        "lr": 1e-3,
        "batch_size": 256,
        "patience": 4,
        "factors": 32,
        "hidden": [64],
        "loss": "bce",
    },
    ("gru4rec", "ranking"): {
        "lr": 3e-3,
        "batch_size": 16,
        "patience": 5,
        "factors": 64,
        "hidden": [64],
        "dropout": 0.25,
        "loss": "softmax",
    },
}
FALLBACK = {"l2": 0.0, "bias_l2": 0.0, "dropout": 0.0, "hidden": [64]}
LOSSES = {"rating": ("mse",), "ranking": ("bce", "bpr", "softmax")}


def auto_model(task: str, has_time: bool) -> str:
    """Ratings: an MF + NeuMF + MF ensemble; implicit with timestamps: GRU4Rec; implicit without: NeuMF."""
    if task == "rating":
        return "mf+neumf+mf"
    return "gru4rec" if has_time else "neumf"


def member_names(name: str) -> list[str]:
    return [part.strip() for part in name.split("+") if part.strip()]


def resolve(config: RecommendConfig, task: str, member: str) -> RecommendConfig:
    """A copy of ``config`` with every unset field filled for ``member`` (one model name) on ``task``."""
    defaults = DEFAULTS.get((member, task))
    if defaults is None:
        supported = sorted({m for m, t in DEFAULTS if t == task})
        other = "ranking" if task == "rating" else "rating"
        raise ConfigError(
            f"model '{member}' does not do {task} recommendation; for {task} use one of {supported}"
            + (f", or pass --task {other}" if (member, other) in DEFAULTS else "")
        )
    model = config.model.model_dump()
    for key in ("factors", "hidden", "dropout", "l2", "bias_l2"):
        if model[key] is None:
            model[key] = defaults.get(key, FALLBACK.get(key))
    model["name"] = member
    loss = model["loss"] if model["loss"] != "auto" else defaults["loss"]
    if loss not in LOSSES[task] or (loss == "softmax") != (member == "gru4rec"):
        allowed = ["softmax"] if member == "gru4rec" else [x for x in LOSSES[task] if x != "softmax"]
        raise ConfigError(f"model.loss '{loss}' does not fit {member} on {task} data; use one of {allowed}")
    model["loss"] = loss
    optimizer = config.optimizer.model_dump()
    optimizer["lr"] = optimizer["lr"] or defaults["lr"]
    trainer = config.trainer.model_dump()
    if trainer["batch_size"] == "auto":
        trainer["batch_size"] = defaults["batch_size"]
    trainer["patience"] = trainer["patience"] or defaults["patience"]
    if trainer["monitor"] == "auto":
        trainer["monitor"] = "rmse" if task == "rating" else f"ndcg_at_{config.evaluate.k}"
    return config.model_copy(
        update={
            "task": task,
            "model": RecModelConfig(**model),
            "optimizer": RecOptimizerConfig(**optimizer),
            "trainer": RecTrainerConfig(**trainer),
        }
    )


def build_recommend_config(
    base: RecommendConfig | dict[str, Any] | str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RecommendConfig:
    """Merge a base config (object, dict or YAML path) with dotted overrides and validate."""
    return build_config(base, overrides, schema=RecommendConfig, aliases=KEY_ALIASES, command="recommend")
