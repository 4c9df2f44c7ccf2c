"""`deepmine anomalies`: score every row of a table, flag the top share, say which columns drove each score.

Fit on every row (unlabeled) or only on the rows marked normal (``fit_normal``); score every row (higher =
more anomalous); a threshold from a contamination rate or a percentile of the scores; ranked rows with their
score and the columns that contributed most; with a label column: roc_auc, average_precision, precision_at_k.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepmine.config import DataConfig
from deepmine.data.sources import DataSource, describe, load_table
from deepmine.exceptions import ConfigError, DataError
from deepmine.train.seeding import seed_everything
from deepmine.unsupervised.detectors import DEFAULT_DETECTOR, make_detector
from deepmine.unsupervised.tabular import check_column, encode_table

DEFAULT_CONTAMINATION = 0.05
TOP_COLUMNS = 3


def check_contamination(contamination: float | None, percentile: float | None) -> None:
    if contamination is not None and percentile is not None:
        raise ConfigError("give a contamination rate or a percentile, not both")
    if contamination is not None and not (0 < contamination <= 0.5):
        raise ConfigError(
            f"contamination rate {contamination!r} is outside (0, 0.5]: it is the expected share of anomalies, "
            "for example --contamination 0.05"
        )
    if percentile is not None and not (0 < percentile < 100):
        raise ConfigError(f"percentile {percentile!r} is outside (0, 100); for example --percentile 99")


def threshold_for(scores: np.ndarray, contamination: float | None, percentile: float | None) -> float:
    """The score above which rows are flagged: the (1 − contamination) quantile, or the given percentile."""
    check_contamination(contamination, percentile)
    if percentile is None:
        percentile = 100 * (1 - (contamination if contamination is not None else DEFAULT_CONTAMINATION))
    return float(np.percentile(scores, percentile))


def positive_mask(labels: pd.Series, positive: Any, where: str, column: str) -> np.ndarray:
    """Which rows the label marks anomalous: ``positive`` if given, 1/True for 0/1 labels, else the rarest value."""
    present = labels.dropna()
    if present.nunique() < 2:
        raise DataError(
            f"label column '{column}' in {where} has {present.nunique()} distinct value(s); scoring needs "
            "anomalous and normal rows"
        )
    if positive is None:
        values = set(present.unique().tolist())
        positive = 1 if values <= {0, 1} or values <= {True, False} else present.value_counts().idxmin()
    keys = labels.astype(str)
    if str(positive) not in set(keys[labels.notna()]):
        raise ConfigError(f"positive label {positive!r} does not occur in column '{column}' of {where}")
    return (keys == str(positive)).to_numpy() & labels.notna().to_numpy()


def anomaly_metrics(is_anomaly: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """roc_auc, average_precision and precision_at_k with k = the number of labelled anomalies."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    k = int(is_anomaly.sum())
    top = np.argsort(-scores, kind="stable")[:k]
    return {
        "roc_auc": float(roc_auc_score(is_anomaly, scores)),
        "average_precision": float(average_precision_score(is_anomaly, scores)),
        "precision_at_k": float(is_anomaly[top].mean()) if k else 0.0,
        "k": k,
    }


@dataclass
class AnomalyResult:
    """Scores for every row, the threshold, the ranked rows and (with a label) the metrics."""

    scores: np.ndarray
    threshold: float
    flagged: np.ndarray
    ranked: list[dict[str, Any]]
    detector: str
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self, top: int) -> dict[str, Any]:
        return {
            **self.info,
            "detector": self.detector,
            "threshold": self.threshold,
            "flagged": int(self.flagged.sum()),
            **self.metrics,
            "top": self.ranked[:top],
        }

    def table(self, frame: pd.DataFrame, id_column: str | None = None) -> pd.DataFrame:
        """One row per input row, most anomalous first: row, [id], score, anomaly, top columns."""
        return pd.DataFrame(
            [
                {
                    "row": item["row"],
                    **({id_column: frame[id_column].iloc[item["row"]]} if id_column else {}),
                    "score": item["score"],
                    "anomaly": item["anomaly"],
                    "top_columns": ";".join(c["column"] for c in item["columns"]),
                }
                for item in self.ranked
            ]
        )


def _deviations(encoded_x: np.ndarray, train_x: np.ndarray) -> np.ndarray:
    """|value − median| / spread per feature, when a detector cannot attribute its score itself."""
    from deepmine.unsupervised.detectors import RobustScaler

    return np.abs(RobustScaler(clip=np.inf).fit(train_x).transform(encoded_x)).astype("float64")


def detect_anomalies(
    data: DataSource,
    *,
    detector: str = DEFAULT_DETECTOR,
    contamination: float | None = None,
    percentile: float | None = None,
    label: str | None = None,
    positive: Any = None,
    fit_normal: Any = None,
    id_column: str | None = None,
    seed: int = 42,
    data_config: DataConfig | None = None,
    detector_options: dict[str, Any] | None = None,
) -> AnomalyResult:
    """Fit ``detector`` and score every row of ``data`` (see the module docstring)."""
    check_contamination(contamination, percentile)
    started = time.perf_counter()
    where = describe(data)
    frame = load_table(data, data_config).reset_index(drop=True)
    check_column(frame, label, where, "--label")
    check_column(frame, id_column, where, "--id")
    if fit_normal is not None and label is None:
        raise ConfigError("fitting on the normal rows needs --label COL to say which rows are normal")
    fit_frame = frame
    if fit_normal is not None:
        normal = frame[label].astype(str) == str(fit_normal)
        if normal.sum() < 2:
            raise DataError(f"only {int(normal.sum())} row(s) of {where} have {label} = {fit_normal!r}; need ≥ 2")
        fit_frame = frame[normal].reset_index(drop=True)
    if len(fit_frame) < 2:
        raise DataError(f"{where} has {len(fit_frame)} row(s); anomaly detection needs at least two")
    encoded = encode_table(frame, where, exclude=[label], id_column=id_column, fit_frame=fit_frame)
    seed_everything(seed)
    model = make_detector(detector, seed=seed, **(detector_options or {}))
    if fit_normal is None:
        scores = model.fit_score(encoded.x)
        train_x = encoded.x
    else:
        train_x = encoded.x[(frame[label].astype(str) == str(fit_normal)).to_numpy()]
        scores = model.fit(train_x).score(encoded.x)
    scores = np.asarray(scores, dtype="float64")
    threshold = threshold_for(scores, contamination, percentile)
    flagged = scores > threshold if np.ptp(scores) > 0 else np.zeros(len(scores), dtype=bool)
    per_feature = model.contributions(encoded.x) if hasattr(model, "contributions") else None
    how = "reconstruction error" if per_feature is not None else "deviation from the median"
    if per_feature is None:
        per_feature = _deviations(encoded.x, train_x)
    per_column = encoded.per_column(per_feature)
    order = np.argsort(-scores, kind="stable")
    ranked = []
    for row in order:
        shares = per_column[row] / max(per_column[row].sum(), 1e-12)
        best = np.argsort(-per_column[row], kind="stable")[:TOP_COLUMNS]
        ranked.append(
            {
                "row": int(row),
                "score": float(scores[row]),
                "anomaly": bool(flagged[row]),
                "columns": [{"column": encoded.columns[j], "share": round(float(shares[j]), 4)} for j in best],
            }
        )
    metrics: dict[str, float] = {}
    if label is not None:
        is_anomaly = positive_mask(frame[label], positive, where, label)
        metrics = anomaly_metrics(is_anomaly, scores)
    info = {
        "source": where,
        "rows": len(frame),
        "fit_rows": len(train_x),
        "features": int(encoded.x.shape[1]),
        "columns": encoded.columns,
        "contributions": how,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return AnomalyResult(scores, threshold, flagged, ranked, detector, metrics, info)
