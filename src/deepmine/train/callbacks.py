"""Callbacks: no-op hooks, a stop flag on the trainer, and state for exact resume."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from deepmine.train.trainer import Trainer

HIGHER_IS_BETTER = {"accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "r2"}
RANKING_PREFIXES = ("hr_at_", "ndcg_at_", "recall_at_", "full_hr_at_", "full_ndcg_at_", "mrr")


def higher_is_better(metric: str) -> bool:
    return metric in HIGHER_IS_BETTER or metric.startswith(RANKING_PREFIXES)


class Callback:
    """Override any hook; set ``trainer.stop_training = True`` to stop after the current epoch."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EarlyStopping(Callback):
    """Stop when the monitored validation value has not improved (by ``min_delta`` of its best, relative) for
    ``patience`` epochs; restore the best weights at the end."""

    def __init__(
        self, monitor: str = "valid_loss", patience: int = 5, restore_best: bool = True, min_delta: float = 0.0
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta  # relative: a new best must beat the old one by this share of it
        self.restore_best = restore_best
        self.sign = 1.0 if higher_is_better(monitor.removeprefix("valid_")) else -1.0
        self.best = -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            return
        score = self.sign * logs[self.monitor]
        needed = self.best + self.min_delta * abs(self.best) if self.min_delta and self.best > -math.inf else self.best
        if score > needed:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.restore_best:
                self.best_weights = copy.deepcopy(trainer.model.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)
        trainer.best_epoch = self.best_epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_weights = state["best_weights"]
