"""Classification losses beyond cross-entropy."""

from __future__ import annotations

import torch
from torch import nn


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``, so the many easy
    examples of the common class weigh less than the rare, hard ones. ``weight`` = per-class weights."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        numerator, denominator = self.per_row(logits, target)
        return numerator.sum() / denominator.sum()

    def per_row(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's class-weighted loss and its class weight (1 without class weights): the loss is their
        sums' ratio."""
        log_p = torch.log_softmax(logits, dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is None:
            return loss, torch.ones_like(loss)
        w = self.weight[target]
        return loss * w, w
