"""Optimizers, learning-rate schedules and the L1 penalty, from the config."""

from __future__ import annotations

import torch
from torch import nn

from deepmine.config import OptimizerConfig, TrainerConfig

PER_BATCH_SCHEDULES = ("cosine", "onecycle")


def build_optimizer(params, config: OptimizerConfig) -> torch.optim.Optimizer:
    """sgd, momentum, nesterov, adam, adamw or rmsprop; ``weight_decay`` is the L2 penalty."""
    lr, wd = config.lr, config.weight_decay
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if config.name in ("momentum", "nesterov"):
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, nesterov=config.name == "nesterov", weight_decay=wd
        )
    if config.name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.RMSprop(
        params, lr=lr, momentum=config.momentum if config.momentum < 0.5 else 0.0, weight_decay=wd
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainerConfig, lr: float, steps_per_epoch: int):
    """The configured schedule, or None. cosine and onecycle step per batch; plateau per epoch."""
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    return None


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of absolute values of every weight matrix (biases and norms excluded)."""
    return sum(p.abs().sum() for p in model.parameters() if p.dim() > 1)
