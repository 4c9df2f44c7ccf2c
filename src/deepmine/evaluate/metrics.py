"""Task metrics computed with scikit-learn, under the names of DESIGN.md's output contract."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "average_precision",
)
REGRESSION_METRICS = ("rmse", "mae", "r2")


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, n_classes: int, y_pred: np.ndarray | None = None
) -> dict[str, float]:
    """Metrics from class indices and an (n, n_classes) probability matrix (``y_pred``: decided classes,
    default the most probable). As in scikit-learn's scorers, a binary target's precision, recall and F1 are those
    of the positive class (class 1, whose probability ROC-AUC ranks); a multiclass target's are macro averages over
    the classes that occur in ``y_true`` or ``y_pred`` (a class absent from both has nothing to measure), and its
    ROC-AUC / average precision are macro averages over the classes present in ``y_true``."""
    y_pred = proba.argmax(axis=1) if y_pred is None else y_pred
    labels = np.arange(n_classes)
    out: dict[str, float] = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined precision for a class never predicted → 0, as documented
        if n_classes == 2:
            averaged = {"labels": labels, "pos_label": 1, "average": "binary"}
        else:
            averaged = {"labels": np.union1d(y_true, y_pred), "average": "macro"}
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, zero_division=0, **averaged)
        out.update(precision=p, recall=r, f1=f)
        out["log_loss"] = skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels)
        out.update(_ranking_metrics(y_true, proba, n_classes))
    return {k: float(v) for k, v in out.items()}


def _ranking_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """ROC-AUC and average precision; for several classes, one-vs-rest macro averages over the classes present in
    ``y_true`` (scikit-learn's ``ovr`` macro when every class is present), so a class the data lacks does not drop
    both metrics."""
    present = np.unique(y_true)
    if len(present) < 2:
        return {}
    if n_classes == 2:
        return {
            "roc_auc": skm.roc_auc_score(y_true, proba[:, 1]),
            "average_precision": skm.average_precision_score(y_true, proba[:, 1]),
        }
    auc = [skm.roc_auc_score(y_true == c, proba[:, c]) for c in present]
    precision = [skm.average_precision_score(y_true == c, proba[:, c]) for c in present]
    return {"roc_auc": float(np.mean(auc)), "average_precision": float(np.mean(precision))}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """Confusion matrix, rows = true class, columns = predicted class."""
    return skm.confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).tolist()


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """rmse, mae and r2 on the original scale."""
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }
