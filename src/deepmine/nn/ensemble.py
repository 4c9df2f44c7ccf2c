"""Deep ensembles: k independently initialised members trained side by side, each on its own loss.

In training mode the ensemble returns the output of every member that trains stacked as (k, rows, outputs) and
:class:`MemberMeanLoss` averages the members' losses (frozen members — solved linear text models — add a
constant to that mean and no gradient, so they are skipped); in eval mode it returns one output per row:
log of the mean class probability (valid logits) for classifiers, the logit of the mean per-label probability
for multilabel models, the mean value for regression.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from deepmine.config import ModelConfig
from deepmine.nn.registry import get_model_builder
from deepmine.nn.trees import blend_from_spec
from deepmine.text.ngrams import shared_table_rows

SPEC_ONLY = ("name", "parameters", "task", "decision_threshold", "label_thresholds", "members", "trees")


class Ensemble(nn.Module):
    """Average of ``k`` members built by the same builder."""

    def __init__(self, members: list[nn.Module], classify: bool, multilabel: bool = False) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.classify = classify
        self.multilabel = multilabel

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.training:
            return torch.stack([member(*inputs) for member in self.trained_members()])
        with shared_table_rows():  # members reading one text column look its n-grams up once
            outputs = torch.stack([member(*inputs) for member in self.members])
        if self.multilabel:  # logit of the members' mean sigmoid probability, per label
            sig = nn.functional.logsigmoid
            return torch.logsumexp(sig(outputs), dim=0) - torch.logsumexp(sig(-outputs), dim=0)
        if self.classify:
            return torch.logsumexp(torch.log_softmax(outputs, dim=-1), dim=0) - math.log(len(self.members))
        return outputs.mean(dim=0)

    def trained_members(self) -> list[nn.Module]:
        """The members with a parameter to train (all of them when none has)."""
        trained = [m for m in self.members if any(p.requires_grad for p in m.parameters())]
        return trained or list(self.members)


class MemberMeanLoss(nn.Module):
    """Mean of ``loss`` over the members of a stacked (k, rows, outputs) prediction. ``members``: the ensemble's
    size, when the stack holds only the members that train (the sum is divided by it, so each trained member's
    gradient is what it would be with the frozen ones in the mean)."""

    def __init__(self, loss: nn.Module, members: int | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.members = members

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.dim() == 3:
            losses = torch.stack([self.loss(member, target) for member in output])
            return losses.sum() / (self.members or len(output))
        return self.loss(output, target)


def member_mean_loss(model: nn.Module, loss: nn.Module) -> MemberMeanLoss:
    """The training loss of ``model``: ``loss`` averaged over its members when it is an ensemble."""
    return MemberMeanLoss(loss, len(model.members) if isinstance(model, Ensemble) else None)


def _combine(spec: dict[str, Any]) -> dict[str, bool]:
    """How the ensemble averages its members for the spec's task."""
    return {"classify": spec.get("task") != "regression", "multilabel": spec.get("task") == "multilabel"}


def build_model(spec: dict[str, Any], config: ModelConfig) -> nn.Module:
    """Build the registered model described by ``spec`` — an ensemble when ``config.ensemble > 1``, blended
    with a tree member when ``spec["trees"]`` is set."""
    return blend_from_spec(_build_network(spec, config), spec)


def _build_network(spec: dict[str, Any], config: ModelConfig) -> nn.Module:
    builder = get_model_builder(spec["name"])
    kwargs = {k: v for k, v in spec.items() if k not in SPEC_ONLY}
    if spec.get("members"):  # one member per entry, each with its own builder arguments (text encoders)
        members = [builder(**kwargs, **extra, config=config) for extra in spec["members"]]
        return members[0] if len(members) == 1 else Ensemble(members, **_combine(spec))
    if config.ensemble <= 1:
        return builder(**kwargs, config=config)
    members = [builder(**kwargs, config=config) for _ in range(config.ensemble)]
    return Ensemble(members, **_combine(spec))
