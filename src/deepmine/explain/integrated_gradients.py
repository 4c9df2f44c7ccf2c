"""Integrated Gradients (Captum) per row for tabular models, summed back to input columns.

The path runs over the concatenated first-layer input of the MLP (numeric column embeddings, categorical
embeddings, text bag embeddings: the input of ``body``), from the baseline row's to the explained row's,
with :class:`captum.attr.LayerIntegratedGradients`. For a deep ensemble every member's first-layer input
moves along the path at once, so the attributions of a row still add up to the ensemble's output minus
the baseline output (completeness). Each column's attribution is the sum over its features.

The explained output is the probability of the predicted class (classifiers, a binary model's decision threshold
applied), of the most probable label (multilabel) or the predicted value on the target's scale (regression). The
baseline is ``columns.BASELINE_DOC``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepmine.exceptions import DeepmineError
from deepmine.explain.columns import BASELINE_DOC, Layout, baseline_blocks, baseline_values, layout
from deepmine.explain.outputs import explained_classes, explained_output
from deepmine.nn.ensemble import Ensemble
from deepmine.nn.trees import TreeBlend
from deepmine.predictor import to_tensors

STEPS = (64, 256, 1024)  # more steps only when a row's completeness error is above TOLERANCE
TOLERANCE = 0.01


class ExplainError(DeepmineError, TypeError):
    """The model cannot be explained this way."""


def _members(model: nn.Module) -> list[nn.Module]:
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    for member in members:
        if not hasattr(member, "body") or not hasattr(member, "embeddings"):
            raise ExplainError(f"Integrated Gradients supports the tabular MLP; this model is {type(member).__name__}")
    return members


def _plain(value: Any) -> Any:
    """A predicted label as it is, a predicted value as a Python float."""
    return float(value) if isinstance(value, float | np.floating) else value


def network_part(model: nn.Module) -> nn.Module:
    """What gradients can explain: the network of a blend with trees (trees have no gradient), else the model."""
    return model.network if isinstance(model, TreeBlend) else model


def body_slices(member: nn.Module, where: Layout) -> dict[str, slice]:
    """Which features of the member's first-layer input belong to each input column."""
    out: dict[str, slice] = {}
    offset = 0
    if member.numeric is not None:
        dim = member.numeric.out_features // max(len(where.numeric), 1)
        widths = [dim] * len(where.numeric)
    else:
        widths = [w for _, w in where.numeric]
    for (name, _), width in zip(where.numeric, widths, strict=True):
        out[name] = slice(offset, offset + width)
        offset += width
    for name, emb in zip(where.categorical, member.embeddings, strict=True):
        out[name] = slice(offset, offset + emb.embedding_dim)
        offset += emb.embedding_dim
    for name, encoder in zip(where.text, member.texts, strict=True):
        out[name] = slice(offset, offset + encoder.out_features)
        offset += encoder.out_features
    return out


def integrated_gradients(
    predictor,
    frame: pd.DataFrame,
    *,
    modes: dict[str, Any] | None = None,
    where: str = "the data",
) -> dict[str, Any]:
    """Per-row, per-column attributions for every row of ``frame`` (keep it small: a few rows).

    ``modes`` is the most frequent training category per categorical column (the artifact's insight). Each row's
    ``row`` is its 1-based number among ``frame``'s data rows, as ``explain --rows N`` counts (rows 1 to N)."""
    from captum.attr import LayerIntegratedGradients  # heavy: imported only when explaining

    model = network_part(predictor.model)
    model.eval()
    members = _members(model)
    pipeline = predictor.pipeline
    cols = layout(pipeline)
    blocks = pipeline.transform(frame, where)
    inputs = tuple(to_tensors(blocks))
    base_row = to_tensors(baseline_blocks(pipeline, modes))
    n = len(frame)
    baselines = tuple(t.expand(n, *t.shape[1:]).contiguous() for t in base_row)
    multilabel = predictor.task == "multilabel"  # one sigmoid per label: the most probable label is explained
    classify = predictor.is_classifier or multilabel
    forward = explained_output(predictor, model)
    with torch.no_grad():
        out_x, out_b = forward(*inputs), forward(*baselines)
    target = torch.as_tensor(explained_classes(predictor, blocks)) if classify else None
    pick = (lambda o: o.gather(1, target[:, None])[:, 0]) if classify else (lambda o: o)
    f_x, f_b = pick(out_x).double().numpy(), pick(out_b).double().numpy()
    with warnings.catch_warnings():  # captum warns that several layers must not feed each other: they do not
        warnings.simplefilter("ignore")
        wides = [(i, name, m.wides[k]) for i, m in enumerate(members) for k, name in enumerate(cols.text)]
        wides = [(i, name, gate) for i, name, gate in wides if members[i].texts[cols.text.index(name)].has_wide]
        lig = LayerIntegratedGradients(forward, [m.body for m in members] + [gate for _, _, gate in wides])
    for steps in STEPS:
        attributions = lig.attribute(
            inputs,
            baselines=baselines,
            target=target,
            n_steps=steps,
            attribute_to_layer_input=True,
            internal_batch_size=max(steps, 256),
        )
        per_column = np.zeros((n, len(cols.columns)))
        for member, attr in zip(members, attributions, strict=False):
            attr = attr[0] if isinstance(attr, tuple | list) else attr
            attr = attr.detach().double().numpy()
            for name, part in body_slices(member, cols).items():
                per_column[:, cols.columns.index(name)] += attr[:, part].sum(axis=1)
        for (_, name, _), attr in zip(wides, attributions[len(members) :], strict=True):  # text n-gram scores
            attr = attr[0] if isinstance(attr, tuple | list) else attr
            per_column[:, cols.columns.index(name)] += attr.detach().double().numpy().sum(axis=1)
        gap = f_x - f_b
        error = np.abs(per_column.sum(axis=1) - gap)
        if np.all(error <= TOLERANCE * np.abs(gap) + 1e-7):
            break
    if multilabel:  # the row's predicted label list (thresholds applied); its most probable label is explained
        labels = [predictor.schema.classes[i] for i in target.tolist()]
        predictions = [list(p) for p in predictor.predict_blocks(blocks)[1]]
    else:
        labels = pipeline.decode_target(target.numpy()) if classify else None
        if isinstance(predictor.model, TreeBlend):  # the network is explained; the prediction is the blend's
            predictions = [_plain(value) for value in predictor.predict_blocks(blocks)[1]]
        else:
            predictions = list(labels) if classify else [float(value) for value in f_x]
    what = "probability of label" if multilabel else "probability of"
    rows = []
    for i in range(n):
        rows.append(
            {
                "row": i + 1,
                "prediction": predictions[i],
                "explained": f"{what} '{labels[i]}'" if classify else "predicted value",
                "output": float(f_x[i]),
                "baseline_output": float(f_b[i]),
                "completeness_error": float(error[i]),
                "attributions": {name: float(per_column[i, j]) for j, name in enumerate(cols.columns)},
            }
        )
    trees = predictor.model_spec.get("trees")
    return {
        "method": "integrated_gradients",
        "model": "the network" + (f" (weight {1 - trees['weight']:g} in the blend with trees)" if trees else ""),
        "steps": steps,
        "baseline": {"description": BASELINE_DOC, "values": baseline_values(pipeline, modes)},
        "rows": rows,
    }
