"""The HTML report of an image classifier artifact: images and preprocessing, model, learning curves,
validation metrics, confusion matrix, ROC/PR, calibration, the most confidently misclassified validation
images and a model card — one self-contained file like the tabular report."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepmine.report import plots
from deepmine.report.build import SECTION_IDS, _environment, write_rendered
from deepmine.report.sections import classification_curves, model_section

if TYPE_CHECKING:
    from deepmine.images.predictor import ImagePredictor

SHARED = ("model", "learning_curves", "metrics", "confusion_matrix", "roc_pr", "calibration")
IMAGE_SECTION_IDS = {  # the tabular report's ids where the sections match, in page order
    "data": "section-images",
    **{key: SECTION_IDS[key] for key in SHARED},
    "misclassified": "section-misclassified",
    "model_card": SECTION_IDS["model_card"],
}


def image_report_context(predictor: ImagePredictor) -> dict[str, Any]:
    """Everything the image report shows, from the artifact alone."""
    spec, training = predictor.spec, predictor.training
    valid = (predictor.metrics or {}).get("valid", {})
    classes = [str(c) for c in predictor.classes]
    best = training.get("best_epoch")
    matrix = valid.get("confusion_matrix")
    insight = predictor.insight if predictor.insight and "validation" in predictor.insight else None
    augment = "none"
    if spec.augment:
        parts = [f"shifts up to ±{spec.shift} px"] + (["horizontal flips"] if spec.flip else [])
        parts += [f"rotations up to ±{spec.rotate:g}°"] if spec.rotate else []
        augment = ", ".join(parts)
    return {
        "title": f"deepmine report: image classifier ({len(classes)} classes)",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ids": IMAGE_SECTION_IDS,
        "classes": classes,
        "data": {
            "source": training.get("source", "the training images"),
            "rows": training.get("rows"),
            "valid_rows": training.get("valid_rows"),
            "skipped": training.get("skipped_images", 0),
            "mode": "gray" if spec.channels == 1 else "RGB",
            "height": spec.height,
            "width": spec.width,
            "resize": "aspect kept, padded" if spec.resize == "pad" else "aspect kept, centre-cropped",
            "mean": ", ".join(f"{m:.3f}" for m in spec.mean),
            "std": ", ".join(f"{s:.3f}" for s in spec.std),
            "augment": augment,
        },
        "model": {**model_section(predictor), "name": predictor.model_spec.get("name", "cnn")},
        "learning_png": plots.learning_curves(predictor.history, best),
        "history": predictor.history,
        "best_epoch": best,
        "metrics": {k: v for k, v in valid.items() if isinstance(v, float)},
        "metric_rows": valid.get("rows"),
        "confusion_png": plots.confusion(matrix, classes) if matrix else None,
        "confusion": matrix,
        "curves": classification_curves(classes, insight["validation"]) if insight else None,
        "misclassified": insight.get("misclassified", []) if insight else None,
        "errors": insight.get("errors") if insight else None,
        "card": _card(predictor, classes),
    }


def _card(predictor: ImagePredictor, classes: list[str]) -> dict[str, Any]:
    spec, training = predictor.spec, predictor.training
    return {
        "intended_use": (
            f"Classify images as {', '.join(classes)}, for images like the training ones "
            f"({training.get('source', 'the training images')}), for analysis and decision support."
        ),
        "training": (
            f"{training.get('epochs', '?')} epochs (best {training.get('best_epoch', '?')}), "
            f"{training.get('seconds', 0):.1f} s, seed {predictor.config.seed}"
        ),
        "limits": [
            f"Every image is brought to {spec.height} × {spec.width} px "
            f"{'gray' if spec.channels == 1 else 'RGB'}; detail finer than that is lost, and images much unlike "
            "the training ones (other cameras, lighting, framing) get less reliable predictions.",
            f"Metrics come from {training.get('valid_rows', '?')} validation images of the same source, not an "
            "independent test set; check them on fresh images with `deepmine evaluate`.",
            "The model always answers one of the training classes, even for an image that shows none of them.",
        ],
    }


def write_image_report(predictor: ImagePredictor, path: Path) -> dict[str, Any]:
    """Render and write the image report; return ``{"path", "seconds", "bytes", "sections"}``."""
    template = _environment().get_template("image_report.html.j2")
    return write_rendered(path, lambda: template.render(**image_report_context(predictor)), IMAGE_SECTION_IDS)
