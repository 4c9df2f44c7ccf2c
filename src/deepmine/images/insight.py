"""What the image report needs from fit time, kept in the artifact's ``insight.json``: labels and class
probabilities on (a sample of) the validation images, for ROC/PR and calibration, and a gallery of the most
confidently misclassified validation images as small PNG thumbnails (as the model saw them, after resizing)."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from deepmine.images.dataset import decoded

if TYPE_CHECKING:
    from deepmine.images.predictor import ImagePredictor
    from deepmine.images.sources import ImageData

INSIGHT_VERSION = 1
GALLERY = 12  # misclassified images shown
THUMBNAIL = 96  # px, longest side at most
INSIGHT_ROWS = 5000  # validation images whose probabilities are kept (like report.sample_rows for tables)
INSIGHT_VALUES = 200_000  # at most rows × classes probabilities, so many-class models keep insight.json small


def thumbnail_uri(pixels: np.ndarray) -> str:
    """A (h, w, c) uint8 image as a ``data:image/png`` URI, shrunk to at most THUMBNAIL px."""
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def misclassified(
    predictor: ImagePredictor, images: ImageData, y: np.ndarray, proba: np.ndarray, limit: int = GALLERY
) -> list[dict[str, Any]]:
    """The ``limit`` wrong predictions made with the highest confidence: name, true and predicted class,
    the predicted class's probability and a thumbnail."""
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    worst = wrong[np.argsort(-proba[wrong, predicted[wrong]], kind="stable")][:limit]
    if not len(worst):
        return []
    pixels = decoded(images.subset(worst), predictor.spec)
    return [
        {
            "name": images.names[i],
            "true": str(predictor.classes[y[i]]),
            "predicted": str(predictor.classes[predicted[i]]),
            "confidence": round(float(proba[i, predicted[i]]), 5),
            "png": thumbnail_uri(image),
        }
        for i, image in zip(worst, pixels, strict=True)
    ]


def image_insight(
    predictor: ImagePredictor,
    images: ImageData,
    y: np.ndarray,
    proba: np.ndarray,
    seed: int,
    rows: int = INSIGHT_ROWS,
) -> dict[str, Any]:
    """Validation labels and probabilities (at most ``rows``, sampled with ``seed``) and the misclassified gallery."""
    total = len(y)
    rows = max(1, min(rows, INSIGHT_VALUES // max(proba.shape[1], 1)))
    keep = np.arange(total)
    if total > rows:
        keep = np.sort(np.random.default_rng(seed).choice(total, rows, replace=False))
    return {
        "version": INSIGHT_VERSION,
        "validation": {
            "rows": total,
            "kept": len(keep),
            "y": y[keep].tolist(),
            "proba": np.round(proba[keep], 5).tolist(),
        },
        "misclassified": misclassified(predictor, images, y, proba),
        "errors": int((proba.argmax(axis=1) != y).sum()),
    }
