"""Decision thresholds for binary classifiers, chosen on validation data for the metric the user names.

``threshold`` settings: ``argmax`` (the most probable class, i.e. 0.5), ``f1`` (the threshold of best F1),
``precision_at_recall=R`` (the best precision among thresholds whose recall is at least R) or
``recall_at_precision=P`` (the best recall among thresholds whose precision is at least P).
"""

from __future__ import annotations

import numpy as np

from deepmine.exceptions import ConfigError

KINDS = ("argmax", "f1", "precision_at_recall", "recall_at_precision")
RARE_SHARE = 0.05  # below this positive share, average precision is the headline metric


def parse_threshold(text: str) -> tuple[str, float | None]:
    """``'precision_at_recall=0.8'`` → ``('precision_at_recall', 0.8)``; a ConfigError for anything else."""
    kind, _, value = str(text).partition("=")
    kind = kind.strip()
    if kind not in KINDS:
        from deepmine.exceptions import did_you_mean

        raise ConfigError(
            f"trainer.threshold '{text}' is not known{did_you_mean(kind, KINDS)}; use argmax, f1, "
            "precision_at_recall=0.8 or recall_at_precision=0.9"
        )
    if kind in ("argmax", "f1"):
        if value:
            raise ConfigError(f"trainer.threshold '{kind}' takes no value (got '{text}')")
        return kind, None
    try:
        level = float(value)
    except ValueError:
        raise ConfigError(f"trainer.threshold '{text}' needs a number after '=', for example {kind}=0.8") from None
    if not 0 < level <= 1:
        raise ConfigError(f"trainer.threshold '{text}': the level must be in (0, 1], got {level}")
    return kind, level


def choose_threshold(y_true: np.ndarray, score: np.ndarray, setting: str) -> dict[str, float | str]:
    """The threshold on the positive-class probability ``score`` that best serves ``setting`` on (y_true, score).

    Returns ``{"setting", "threshold", "precision", "recall", "f1"}`` measured at that threshold.
    """
    from sklearn.metrics import precision_recall_curve

    kind, level = parse_threshold(setting)
    y_true = np.asarray(y_true).astype(int)
    if kind == "argmax" or y_true.min() == y_true.max():
        threshold = 0.5
    else:
        precision, recall, thresholds = precision_recall_curve(y_true, score)
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        if kind == "f1":
            best = int(np.argmax(f1))
        elif kind == "precision_at_recall":
            ok = np.flatnonzero(recall >= level)
            best = int(ok[np.argmax(precision[ok])]) if ok.size else 0
        else:
            ok = np.flatnonzero(precision >= level)
            best = int(ok[np.argmax(recall[ok])]) if ok.size else int(np.argmax(precision))
        threshold = float(thresholds[best])
    pred = score >= threshold
    tp = float((pred & (y_true == 1)).sum())
    p = tp / max(pred.sum(), 1)
    r = tp / max((y_true == 1).sum(), 1)
    return {
        "setting": setting,
        "threshold": float(threshold),
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / max(p + r, 1e-12),
    }
