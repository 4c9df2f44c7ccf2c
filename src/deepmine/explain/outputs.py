"""The output an explanation explains, computed from model inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def explained_output(predictor, model: nn.Module) -> Callable[..., torch.Tensor]:
    """``model``'s output as people read it: class probabilities (rows, classes), per-label probabilities of a
    multilabel model (rows, labels), or the predicted value on the target's scale (rows,)."""
    if predictor.task == "multilabel":
        return lambda *xs: torch.sigmoid(model(*xs))
    if predictor.is_classifier:
        return lambda *xs: torch.softmax(model(*xs), dim=1)
    scale, shift = float(predictor.pipeline.target_std), float(predictor.pipeline.target_mean)
    return lambda *xs: model(*xs)[:, 0] * scale + shift


def explained_classes(predictor, blocks) -> np.ndarray | None:
    """Per row of ``blocks`` (model inputs), the class index an explanation is about: the predicted class (a
    binary model's decision threshold applied, so it is the class `deepmine predict` gives), or the most
    probable label of a multilabel model; None for regression."""
    proba, _ = predictor.predict_blocks(blocks)
    if proba is None:
        return None
    return proba.argmax(axis=1) if predictor.task == "multilabel" else predictor.decide(proba)


def shown_prediction(predictor, value: Any) -> str:
    """A row's prediction as people read it: a label list joined as the data writes it ('(no label)' when
    empty), a predicted value with 4 significant digits (thousands grouped from 100,000), a label as it is."""
    if isinstance(value, list | tuple):
        from deepmine.tasks.multilabel import join_lists

        return join_lists([value], predictor.schema.label_sep or "|")[0] or "(no label)"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)
