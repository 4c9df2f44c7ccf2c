"""Multilabel targets: delimited label lists ("sports|politics"), one sigmoid output per label."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deepmine.exceptions import DataError

DELIMITERS = ("|", ";", ",")
DEFAULT_DELIMITER = "|"
MOST = 0.5  # share of values that must hold a delimiter for it to be detected
HINT = 0.2  # share above which a multiclass target with label lists gets a hint to use --task multilabel
# a minority of label lists is still detected when at least this share (and COMPOSED_ROWS values) hold the
# delimiter and their pieces are labels standing alone in other rows ("hot|wet" beside "hot" and "wet")
COMPOSED_SHARE = 0.05
COMPOSED_ROWS = 5
THRESHOLD = 0.5  # default decision threshold per label
MULTILABEL_METRICS = ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy")


def split_values(column: pd.Series, sep: str) -> list[list[str]]:
    """Each value as its list of labels (stripped, de-duplicated, in order); a missing or empty value → ``[]``."""
    out = []
    for value in column.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append([])
            continue
        pieces = [p.strip() for p in str(value).split(sep)]
        out.append(list(dict.fromkeys(p for p in pieces if p)))
    return out


def detect_delimiter(column: pd.Series, most: float = MOST) -> str | None:
    """The delimiter of a column of label lists, with pieces that repeat across rows: held by most values (over
    ``most``), or by a few whose pieces all stand alone as values of other rows (see :func:`_composed`)."""
    nonnull = column.dropna().astype(str)
    if not len(nonnull) or pd.api.types.is_numeric_dtype(column):
        return None
    shares = {sep: nonnull.str.contains(sep, regex=False).mean() for sep in DELIMITERS}
    for sep in sorted(DELIMITERS, key=lambda d: -shares[d]):  # the most common delimiter first
        if shares[sep] <= most and not (shares[sep] >= COMPOSED_SHARE and _composed(nonnull, sep)):
            continue
        if sep == "," and nonnull.str.fullmatch(r"\s*-?\d+,\d+\s*").mean() > most:  # decimal commas: numbers
            continue
        counts = Counter(label for labels in split_values(nonnull, sep) for label in labels)
        total = sum(counts.values())
        repeated = sum(n for n in counts.values() if n >= 2)
        if len(counts) >= 2 and repeated >= 0.9 * total and len(counts) <= 0.5 * len(nonnull):
            return sep
    return None


def _composed(values: pd.Series, sep: str) -> bool:
    """Whether the values holding ``sep`` (at least COMPOSED_ROWS) are lists of labels that other rows hold alone:
    nine in ten of their pieces are whole values elsewhere, and at least two such labels exist."""
    holding = values.str.contains(sep, regex=False)
    if holding.sum() < COMPOSED_ROWS:
        return False
    alone = set(values[~holding].str.strip())
    pieces = [label for labels in split_values(values[holding], sep) for label in labels]
    standing = [p for p in pieces if p in alone]
    return len(set(standing)) >= 2 and len(standing) >= 0.9 * len(pieces)


def multilabel_hint(column: pd.Series) -> str:
    """A note for a multiclass target whose values look like label lists held by a minority of rows."""
    sep = detect_delimiter(column, HINT)
    return f"; values look like {sep!r}-separated label lists: --task multilabel reads them so" if sep else ""


def label_set(column: pd.Series, sep: str, target: str, where: str) -> list[str]:
    """The sorted labels of a multilabel target; a DataError when fewer than two exist."""
    counts = Counter(label for labels in split_values(column, sep) for label in labels)
    if len(counts) < 2:
        found = f"the single label {next(iter(counts))!r}" if counts else "no labels at all"
        raise DataError(
            f"target column '{target}' in {where} holds {found} (split on {sep!r}); a multilabel target needs at "
            "least two labels (check the target, or set columns.label_sep to the right delimiter)"
        )
    return sorted(counts)


def indicator_matrix(column: pd.Series, labels: Sequence[str], sep: str, target: str, where: str) -> np.ndarray:
    """(rows, labels) float32 0/1 matrix; a DataError naming a label the model was not trained on."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(column), len(labels)), dtype="float32")
    for row, values in enumerate(split_values(column, sep)):
        for value in values:
            if value not in index:
                raise DataError(
                    f"target column '{target}' in {where} holds label {value!r}, which is not one of the trained "
                    f"labels {list(labels)}; fix the labels or refit with these rows"
                )
            out[row, index[value]] = 1.0
    return out


def decide(proba: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """(rows, labels) booleans: each label's probability at or above its threshold (0.5 unless tuned)."""
    cut = np.full(proba.shape[1], THRESHOLD) if thresholds is None else np.asarray(thresholds, dtype="float64")
    return proba >= cut


def label_lists(decided: np.ndarray, labels: Sequence[Any]) -> np.ndarray:
    """Object array holding, per row, the list of labels switched on in ``decided``."""
    names = list(labels)
    out = np.empty(len(decided), dtype=object)
    for i, row in enumerate(decided):
        out[i] = [names[j] for j in np.flatnonzero(row)]
    return out


def join_lists(values: Iterable[Sequence[Any]], sep: str) -> list[str]:
    """Label lists as delimited strings (``[]`` → ``''``)."""
    return [sep.join(str(v) for v in labels) for labels in values]


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """micro/macro/samples F1, Hamming loss and subset accuracy (scikit-learn) on 0/1 indicator matrices."""
    from sklearn import metrics as skm

    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined F1 (no true and no predicted label) counts as 0, as documented
        out = {
            "micro_f1": skm.f1_score(y_true, y_pred, average="micro", zero_division=0),
            "macro_f1": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
            # a row with no true and no predicted label is a perfect match, not 0/0 → 0
            "samples_f1": skm.f1_score(y_true, y_pred, average="samples", zero_division=1),
            "hamming_loss": skm.hamming_loss(y_true, y_pred),
            "subset_accuracy": skm.accuracy_score(y_true, y_pred),
        }
    return {k: float(v) for k, v in out.items()}


def tune_thresholds(y_true: np.ndarray, proba: np.ndarray, setting: str) -> list[float]:
    """Per-label decision thresholds chosen on validation rows for ``setting`` (see evaluate.thresholds)."""
    from deepmine.evaluate.thresholds import choose_threshold

    return [float(choose_threshold(y_true[:, j], proba[:, j], setting)["threshold"]) for j in range(proba.shape[1])]


def lists_to_target(y: Sequence[Any]) -> tuple[np.ndarray, str] | None:
    """Python label lists (MultiLabelBinarizer style) as delimited strings and the delimiter; None for plain y."""
    values = list(y)
    if not values or not all(isinstance(v, list | tuple | set | frozenset) for v in values):
        return None
    labels = {str(label) for v in values for label in v}
    sep = next((s for s in DELIMITERS if not any(s in label for label in labels)), None)
    if sep is None:
        raise DataError("y holds labels containing '|', ';' and ','; rename the labels so one delimiter is free")
    rows = [sorted(v, key=str) if isinstance(v, set | frozenset) else list(v) for v in values]
    return np.asarray(join_lists(rows, sep), dtype=object), sep


def multilabel_loss(config: Any, y_train: Any) -> Any:
    """BCE-with-logits over the label outputs; ``trainer.class_weight=balanced`` weighs each label's positives
    by its negative/positive ratio on the training rows."""
    import torch
    from torch import nn

    from deepmine.exceptions import ConfigError

    if config.trainer.loss == "focal":
        raise ConfigError("trainer.loss 'focal' does not apply to a multilabel target; leave the default loss")
    pos_weight = None
    if config.trainer.class_weight == "balanced":
        positives = y_train.float().sum(dim=0).clamp(min=1.0)
        pos_weight = (len(y_train) - positives).clamp(min=1.0) / positives
    return nn.BCEWithLogitsLoss(pos_weight=pos_weight if pos_weight is None else torch.as_tensor(pos_weight))
