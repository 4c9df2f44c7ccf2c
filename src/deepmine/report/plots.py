"""Figures for the report, drawn with matplotlib's object API (no pyplot state) and embedded as base64 PNG."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

DPI = 80
BLUE, ORANGE, GREY = "#3b6ea5", "#d9822b", "#888888"


def _figure(width: float, height: float, constrained: bool = True):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)


def to_data_uri(fig) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (self-contained: no file, no request)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _short(text: Any, size: int = 18) -> str:
    text = str(text)
    return text if len(text) <= size else text[: size - 1] + "…"


def distributions(profile: dict[str, Any], max_panels: int = 24) -> str | None:
    """One small panel per column: a histogram (numeric, on a sample) or the most frequent values (exact)."""
    hist = (profile.get("distributions") or {}).get("histograms", {})
    panels = [c for c in profile["columns"] if c["name"] in hist or "top" in c["stats"]][:max_panels]
    if not panels:
        return None
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig = _figure(13, 2.3 * rows, constrained=False)  # a constrained layout of many panels is slow to solve
    fig.subplots_adjust(left=0.1, right=0.99, top=1 - 0.35 / rows, bottom=0.25 / rows, wspace=0.75, hspace=0.55)
    for i, col in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_title(_short(f"{col['name']} ({col['role']})", 30), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.locator_params(axis="x", nbins=4)
        if col["name"] in hist:
            edges, counts = np.asarray(hist[col["name"]]["edges"], float), hist[col["name"]]["counts"]
            ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=BLUE)
        else:
            top = col["stats"]["top"]
            ax.barh([_short(k) for k in top][::-1], list(top.values())[::-1], color=ORANGE)
    return to_data_uri(fig)


def bars(labels: list[str], values: list[float], title: str, errors: list[float] | None = None) -> str:
    """Horizontal bars, largest on top."""
    fig = _figure(7, 0.3 * len(labels) + 1.0)
    ax = fig.add_subplot()
    ax.barh([_short(x, 28) for x in labels][::-1], values[::-1], xerr=errors[::-1] if errors else None, color=BLUE)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    return to_data_uri(fig)


def correlation(columns: list[str], matrix: list[list[float | None]]) -> str:
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    size = min(9.0, 2.5 + 0.4 * len(columns))
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot()
    image = ax.imshow(values, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(columns)), [_short(c, 14) for c in columns], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(columns)), [_short(c, 14) for c in columns], fontsize=7)
    if len(columns) <= 12:
        for i in range(len(columns)):
            for j in range(len(columns)):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return to_data_uri(fig)


def learning_curves(history: list[dict[str, float]], best_epoch: int | None) -> str | None:
    from matplotlib.ticker import MaxNLocator

    if not history:
        return None
    epochs = [h["epoch"] for h in history]
    metric = next((k for k in ("valid_roc_auc", "valid_accuracy", "valid_r2") if k in history[0]), None)
    fig = _figure(10, 3.2)
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(epochs, [h["train_loss"] for h in history], label="training loss", color=BLUE)
    if "valid_loss" in history[0]:
        ax.plot(epochs, [h["valid_loss"] for h in history], label="validation loss", color=ORANGE)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_title("loss", fontsize=10)
    if best_epoch:
        ax.axvline(best_epoch, color=GREY, linestyle="--", label=f"best epoch ({best_epoch})")
    ax.legend(fontsize=8)
    if metric:
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(epochs, [h[metric] for h in history], color=ORANGE)
        ax2.set_xlabel("epoch")
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.set_title(metric.replace("valid_", "validation "), fontsize=10)
        if best_epoch:
            ax2.axvline(best_epoch, color=GREY, linestyle="--")
    return to_data_uri(fig)


def confusion(matrix: list[list[int]], classes: list[str]) -> str:
    values = np.asarray(matrix, dtype=float)
    size = min(8.0, 2.8 + 0.45 * len(classes))
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot()
    shares = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    labels = [_short(c, 14) for c in classes]
    ax.set_xticks(range(len(classes)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 15:
        for i in range(len(classes)):
            for j in range(len(classes)):
                color = "white" if shares[i, j] > 0.6 else "black"
                text = f"{int(values[i, j])}\n{shares[i, j]:.0%}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    return to_data_uri(fig)


def roc_pr(curves: list[dict[str, Any]]) -> str:
    """ROC and precision-recall curves, one entry of ``curves`` per class shown
    (label, fpr, tpr, precision, recall, auc, ap)."""
    fig = _figure(10, 3.8)
    roc, pr = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for curve in curves:
        roc.plot(curve["fpr"], curve["tpr"], label=f"{_short(curve['label'])} (AUC {curve['auc']:.3f})")
        pr.plot(curve["recall"], curve["precision"], label=f"{_short(curve['label'])} (AP {curve['ap']:.3f})")
    roc.plot([0, 1], [0, 1], color=GREY, linestyle="--")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
    roc.legend(fontsize=7, loc="lower right")
    pr.legend(fontsize=7, loc="lower left")
    return to_data_uri(fig)


def calibration(bins: list[dict[str, float]], label: str) -> str:
    fig = _figure(10, 3.6)
    ax, hist = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", label="perfectly calibrated")
    ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], marker="o", color=BLUE, label="model")
    ax.set(xlabel=f"predicted probability of {_short(label)}", ylabel="observed frequency", title="reliability")
    ax.legend(fontsize=8)
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    hist.bar(centers, [b["count"] for b in bins], width=[b["high"] - b["low"] for b in bins], color=ORANGE)
    hist.set(xlabel="predicted probability", ylabel="rows", title="how often each probability is predicted")
    return to_data_uri(fig)


def residuals(y: np.ndarray, pred: np.ndarray) -> str:
    resid = y - pred
    fig = _figure(12, 3.4)
    a, b, c = fig.add_subplot(1, 3, 1), fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3)
    a.scatter(pred, y, s=4, alpha=0.4, color=BLUE)
    low, high = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    a.plot([low, high], [low, high], color=GREY, linestyle="--")
    a.set(xlabel="predicted", ylabel="actual", title="actual vs predicted")
    b.scatter(pred, resid, s=4, alpha=0.4, color=BLUE)
    b.axhline(0, color=GREY, linestyle="--")
    b.set(xlabel="predicted", ylabel="residual (actual − predicted)", title="residuals")
    c.hist(resid, bins=40, color=ORANGE)
    c.set(xlabel="residual", ylabel="rows", title="residual distribution")
    return to_data_uri(fig)
