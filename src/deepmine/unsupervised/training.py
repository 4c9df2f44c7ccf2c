"""Fit an autoencoder with the project's Trainer (inputs ``[x]``, target ``x``)."""

from __future__ import annotations

import torch
from torch import nn

from deepmine.config import OptimizerConfig, TrainerConfig
from deepmine.nn.autoencoders import ReconstructionLoss
from deepmine.train.trainer import Trainer


def steps_per_epoch(rows: int, batch_size: int) -> int:
    return max(1, -(-rows // max(1, min(batch_size, rows))))


def epochs_for(rows: int, batch_size: int, min_steps: int, min_epochs: int, max_epochs: int) -> int:
    """Enough epochs for at least ``min_steps`` optimizer steps, within ``[min_epochs, max_epochs]``."""
    wanted = -(-min_steps // steps_per_epoch(rows, batch_size))
    return int(min(max(wanted, min_epochs), max_epochs))


def train_autoencoder(
    model: nn.Module,
    x: torch.Tensor,
    *,
    seed: int,
    epochs: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    threads: int | None = None,
    progress: bool | None = False,
) -> list[dict[str, float]]:
    """Train ``model`` to reconstruct ``x``; shuffling follows ``seed``. Returns the Trainer's history."""
    generator = torch.Generator().manual_seed(seed)
    trainer_config = TrainerConfig(
        epochs=epochs,
        batch_size=max(1, min(batch_size, len(x))),
        early_stopping=False,
        checkpoint=False,
        progress=progress,
        threads=threads,
    )
    optimizer = OptimizerConfig(name="adam", lr=lr, weight_decay=weight_decay)
    trainer = Trainer(model, ReconstructionLoss(), trainer_config, optimizer, generator=generator)
    return trainer.fit([x], x)
