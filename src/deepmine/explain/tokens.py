"""Which tokens of a text column moved a row's prediction: the explained output with each token left out.

For every text column of a row, the units are its tokenizer's tokens (a jieba word goes together with the
characters the encoder appends for it; a word the vocabulary lacks goes with the characters it falls back to).
A token's attribution is the explained output of the row as it is minus the output with that one token
removed from the text (Captum's ``FeatureAblation`` over a keep-mask of the tokens), so a positive value
means the token pushed the output up. Only the first ``length`` tokens (what the model reads) are left out one
at a time; the rest stay in every variant. An attribution within float32 round-off of the output
(``|a| <= 4 * eps32 * max(1, |output|)``) is exactly 0.0: leaving out a token that changes nothing the model
computes (an unknown word among unknown words) moves a float32 output by round-off only, not by a real effect.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepmine.explain.outputs import explained_classes, explained_output
from deepmine.features.pipeline import Blocks
from deepmine.predictor import to_tensors
from deepmine.text.column import as_texts

BATCH = 256  # variants scored per forward pass
ROUND_OFF = 4 * float(np.finfo(np.float32).eps)  # relative size of float32 noise in an output difference


def _row_variants(blocks: Blocks, row: int, column: int, ids: np.ndarray) -> Blocks:
    """Row ``row`` of ``blocks`` repeated once per row of ``ids``, with text column ``column`` taking ``ids``."""
    count = len(ids)
    texts = [t[row : row + 1].repeat(count, axis=0) for t in blocks.texts]
    texts[column] = ids
    return Blocks(
        blocks.numeric[row : row + 1].repeat(count, axis=0),
        blocks.categorical[row : row + 1].repeat(count, axis=0),
        texts,
    )


def token_attributions(
    predictor, frame: pd.DataFrame, where: str = "the data"
) -> list[dict[str, list[tuple[str, float]]]]:
    """Per row of ``frame``, per text column: ``(token, attribution)`` in text order. The output explained is
    the one :func:`~deepmine.explain.outputs.explained_output` gives, of the class (or label) Integrated
    Gradients explain (:func:`~deepmine.explain.outputs.explained_classes`: the class predict gives)."""
    model = predictor.model
    model.eval()
    output = explained_output(predictor, model)
    pipeline = predictor.pipeline
    blocks = pipeline.transform(frame, where)
    classify = predictor.is_classifier or predictor.task == "multilabel"
    explained = explained_classes(predictor, blocks) if classify else None

    def score(row: int, column: int, ids: np.ndarray) -> torch.Tensor:
        out = output(*to_tensors(_row_variants(blocks, row, column, ids)))
        return out[:, int(explained[row])] if classify else out

    result: list[dict[str, list[tuple[str, float]]]] = [{} for _ in range(len(frame))]
    for column, (name, encoder) in enumerate(pipeline.text.items()):
        for row, text in enumerate(as_texts(frame[name])):
            result[row][name] = _leave_one_out(encoder.units(text), encoder, partial(score, row, column))
    return result


def _leave_one_out(tokens: list[str], encoder, score) -> list[tuple[str, float]]:
    """``(token, score(all) - score(without it))`` for each of the first ``encoder.length`` tokens; ``score``
    maps id rows of text variants to one output per row. Variants carry only the tokens after those that the
    model can still read (:meth:`~deepmine.text.column.TextColumnEncoder.read_units`), however long the text."""
    from captum.attr import FeatureAblation  # heavy: imported only when explaining

    shown, rest = encoder.read_units(tokens)
    if not shown:
        return []

    def forward(keep: torch.Tensor) -> torch.Tensor:
        kept = [[t for t, k in zip(shown, flags, strict=True) if k] + rest for flags in (keep > 0.5).tolist()]
        return score(encoder.transform_units(kept))

    with torch.no_grad():
        output = float(forward(torch.ones(1, len(shown)))[0])
        scores = FeatureAblation(forward).attribute(
            torch.ones(1, len(shown)), baselines=0.0, perturbations_per_eval=min(len(shown), BATCH)
        )
    return list(zip(shown, snap_round_off(scores[0].tolist(), output), strict=True))


def snap_round_off(attributions: list[float], output: float) -> list[float]:
    """``attributions`` of ``output`` with those within float32 round-off of it (see the module docstring) as 0.0."""
    cut = ROUND_OFF * max(1.0, abs(output))
    return [0.0 if abs(a) <= cut else a for a in attributions]


def strongest(tokens: list[dict[str, Any]], count: int = 5) -> list[dict[str, Any]]:
    """The ``count`` tokens (JSON form) with the largest absolute attribution, strongest first."""
    return sorted(tokens, key=lambda t: -abs(t["attribution"]))[:count]


def as_json(tokens: dict[str, list[tuple[str, float]]]) -> dict[str, list[dict[str, Any]]]:
    """Token attributions of one row as JSON: per text column, one object per token in text order."""
    return {
        name: [{"token": t, "position": i + 1, "attribution": s} for i, (t, s) in enumerate(pairs)]
        for name, pairs in tokens.items()
    }


def add_token_attributions(predictor, frame: pd.DataFrame, explained: dict[str, Any], where: str) -> dict[str, Any]:
    """``explained`` (Integrated Gradients of ``frame``'s rows) with each row's token attributions under
    ``tokens`` when the model reads text columns; unchanged otherwise."""
    if not predictor.pipeline.text or not explained.get("rows"):
        return explained
    for row, tokens in zip(explained["rows"], token_attributions(predictor, frame, where), strict=True):
        row["tokens"] = as_json(tokens)
    explained["token_method"] = (
        "token attribution = explained output of the row minus the output with that token left out of the text"
    )
    return explained
