"""Row weights (``columns.weight``, scikit-learn's ``sample_weight``): each training row's share of the loss.

A weight column holds one non-negative number per row: a frequency (a row standing for several identical ones),
a survey or importance weight. The weights multiply each row's loss, as scikit-learn's ``sample_weight`` does
(only their ratios matter): the weighted loss of a batch is ``Σ wᵢ·lossᵢ / Σ wᵢ`` (with class
weights, ``Σ wᵢ·cᵢ·lossᵢ / Σ wᵢ·cᵢ``), so weights of 1 train exactly as no weights. The trees of a table model get
the same weights. They travel to the loss as the last column of the training target (:func:`pack`), so every
batch source, bucketing and distributed sharding slices them with their rows unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepmine.data.schema import to_native
from deepmine.exceptions import DataError, warn_user
from deepmine.features.numeric import row_label


def read_weights(frame: pd.DataFrame, column: str, where: str, name: str | None = None) -> torch.Tensor:
    """The weight column of ``frame`` as float64; a one-line error for a missing, non-numeric, negative or
    infinite weight, or weights that are all zero. ``name``: what the errors call the weights (scikit-learn's
    ``sample_weight``), else the column of ``where``."""
    if column not in frame.columns:
        raise DataError(f"weight column '{column}' is not in {where}; add it (or leave columns.weight unset)")
    name = name or f"weight column '{column}' of {where}"
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values) | (values < 0)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raw = frame[column].iloc[position]
        held = "has no value" if pd.isna(raw) else f"holds {to_native(raw)!r}"  # -2, not np.int64(-2)
        raise DataError(
            f"{name} {held} at {row_label(frame[column], position)}; row weights "
            "must be finite numbers >= 0 (give such rows weight 0 to leave them out, or fix the value)"
        )
    if len(values) and float(values.sum()) <= 0:
        raise DataError(f"{name} is 0 in every row; give some rows weight > 0")
    return torch.from_numpy(values.to_numpy(dtype="float64", copy=True))


def split_weights(
    weights: torch.Tensor | None,
    column: str | None,
    split: tuple[np.ndarray, np.ndarray] | None,
    valid: pd.DataFrame,
    where: str,
    valid_where: str,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The training and validation rows' weights, taken from ``weights``, those of the table ``where`` read by
    :func:`read_weights` once per fit (``None, None`` without a weight column). ``split``: the positions of a
    random split's training and validation rows; ``None`` when ``valid`` is a ``--valid`` table, whose own weight
    column is read here (without one, its rows weigh alike). A random split whose training rows all weigh 0 is
    an error; one whose validation rows all weigh 0 is a warning (see :func:`valid_loss_weights`)."""
    if weights is None:
        return None, None
    if split is None:
        if column not in valid.columns:
            return weights, torch.ones(len(valid), dtype=torch.float64)
        return weights, read_weights(valid, column, valid_where)
    train, held = (weights[torch.from_numpy(rows)] for rows in split)
    change = "pass a --valid file, or change trainer.valid_fraction or the seed"
    if float(train.sum()) <= 0:
        raise DataError(
            f"weight column '{column}' of {where}: every row of weight > 0 fell in {valid_where}, so the training "
            f"rows all weigh 0; {change}"
        )
    if len(held) and float(held.sum()) <= 0:
        warn_user(
            f"weight column '{column}' of {where}: every row of {valid_where} has weight 0, so its loss (early "
            f"stopping, the best epoch) weighs its rows alike; to weigh it, {change}"
        )
    return train, held


def valid_loss_weights(weights: torch.Tensor | None) -> torch.Tensor | None:
    """The validation rows' ``weights`` as their loss uses them: ``None`` (rows alike, the unweighted loss) when
    they are all 0, where the weighted loss would be 0 / 0. The rows themselves keep weight 0 (trees regrown on
    all rows leave them out)."""
    if weights is None or not len(weights) or float(weights.sum()) > 0:
        return weights
    return None


def pack(target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``target`` (labels, values or 0/1 label rows) with the row weights appended as a last float64 column."""
    return torch.cat([target.double().reshape(len(target), -1), weights.double()[:, None]], dim=1)


class RowWeightedLoss(nn.Module):
    """``loss`` (cross-entropy, focal, squared error or per-label BCE) weighted per row by the last column of a
    :func:`pack`-ed target; the other columns are restored to ``target_dtype`` (and to one dimension when the
    target had one)."""

    def __init__(self, loss: nn.Module, target_dtype: torch.dtype, multilabel: bool = False) -> None:
        super().__init__()
        self.loss = loss
        self.target_dtype = target_dtype
        self.multilabel = multilabel
        self.per_row = per_row_function(loss)

    def forward(self, output: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        target, weights = unpack(packed, self.target_dtype, self.multilabel)
        numerator, denominator = self.per_row(output, target)
        weights = weights.to(output.dtype)
        return (weights * numerator).sum() / (weights * denominator).sum().clamp_min(torch.finfo(output.dtype).tiny)


def unpack(packed: torch.Tensor, dtype: torch.dtype, multilabel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The target (as ``dtype``; one dimension unless ``multilabel``) and the row weights of a :func:`pack`-ed
    target."""
    target = packed[:, :-1] if multilabel else packed[:, 0]
    return target.to(dtype), packed[:, -1]


def per_row_loss(loss: nn.Module, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's loss and its share of the mean's denominator: ``loss(output, target)`` is
    ``numerator.sum() / denominator.sum()`` for the losses deepmine trains tables with."""
    return per_row_function(loss)(output, target)


PerRow = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def per_row_function(loss: nn.Module) -> PerRow:
    """:func:`per_row_loss` for ``loss``, chosen once (the weighted loss calls it every batch)."""
    from deepmine.nn.losses import FocalLoss
    from deepmine.tasks.supervised import RegressionLoss

    functional = nn.functional

    def ones(output: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(output), dtype=output.dtype, device=output.device)

    def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = functional.cross_entropy(output, target, weight=loss.weight, reduction="none")
        return rows, (loss.weight[target] if loss.weight is not None else ones(output))

    def squared_error(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (output.squeeze(-1) - target) ** 2, ones(output)

    def per_label(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = functional.binary_cross_entropy_with_logits(output, target, pos_weight=loss.pos_weight, reduction="none")
        return rows.mean(dim=1), ones(output)

    if isinstance(loss, nn.CrossEntropyLoss):
        return cross_entropy
    if isinstance(loss, FocalLoss):
        return loss.per_row
    if isinstance(loss, RegressionLoss):
        return squared_error
    if isinstance(loss, nn.BCEWithLogitsLoss):
        return per_label
    raise TypeError(f"row weights are not supported with the loss {type(loss).__name__}")
