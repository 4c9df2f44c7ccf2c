"""The image side of `deepmine fit / evaluate / predict` (called from deepmine.cli when the data are images)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepmine.images.predictor import ImagePredictor

KIND = "image"  # deepmine.images.predictor.KIND, repeated so detection needs no torch


def is_image_artifact(artifact: Path) -> bool:
    """Whether the artifact's deepmine.json says ``"kind": "image"`` (read without heavy imports)."""
    try:
        return json.loads((Path(artifact) / "deepmine.json").read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def fit_command(
    data: str,
    *,
    out: Path | None,
    overrides: dict[str, Any],
    config: Path | None,
    valid: str | None,
    resume: bool,
    json_out: bool,
) -> None:
    """Train on an image folder / table of paths / IDX / NPZ file and write the artifact."""
    from deepmine.images.config import build_image_config
    from deepmine.images.task import fit_images
    from deepmine.io_utils import check_replaceable
    from deepmine.tracking import record_fit, tracked_fit

    report = overrides.get("report.enabled", True) is not False  # --no-report
    overrides = {k: v for k, v in overrides.items() if k != "report.enabled"}  # not an image config setting
    run = build_image_config(config, overrides)
    if out is None:
        out = Path(f"{Path(data).name.split('.')[0] or 'images'}-model")
    check_replaceable(out)  # before training, not when saving
    checkpoint_dir = out.parent / f".{out.name}.checkpoint"
    if not resume and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    cache_dir = out.parent / f".{out.name}.cache"
    predictor, tracker = tracked_fit(
        run,
        lambda: fit_images(data, run, valid=valid, checkpoint_dir=checkpoint_dir, resume=resume, cache_dir=cache_dir),
    )
    predictor.save(out)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    if report:
        from deepmine.report.images import write_image_report

        write_image_report(predictor, out / "report.html")
    metrics = {k: v for k, v in predictor.metrics["valid"].items() if k not in ("rows", "confusion_matrix")}
    summary = {
        "artifact": str(out),
        "task": predictor.task,
        "kind": KIND,
        "classes": predictor.classes,
        "split": "valid",
        "rows": predictor.training["rows"],
        "valid_rows": predictor.training["valid_rows"],
        "skipped_images": predictor.training["skipped_images"],
        "epochs": predictor.training["epochs"],
        "seconds": predictor.training["seconds"],
        "image_size": [predictor.spec.height, predictor.spec.width, predictor.spec.channels],
        **metrics,
        **record_fit(tracker, predictor, str(data), out),
    }
    if json_out:
        _emit(summary)
        return
    print(
        f"trained {summary['epochs']} epochs on {summary['rows']} images in {summary['seconds']:.1f} s; validation "
        f"accuracy {metrics['accuracy']:.4f}; artifact written to {out}",
        file=sys.stderr,
    )


def evaluate_command(artifact: Path, data: str, json_out: bool, strict: bool) -> None:
    predictor = _load(artifact, strict)
    metrics = predictor.evaluate(data)
    if json_out:
        _emit(metrics)
        return
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    print(f"test metrics on {data} ({metrics['rows']} images): {shown}", file=sys.stderr)


def predict_command(artifact: Path, data: str, output: Path | None, id_column: str | None, strict: bool) -> None:
    from deepmine.batch import write_predictions

    predictor = _load(artifact, strict)
    rows = write_predictions(iter([predictor.predict_frame(data, id_column)]), output)
    if output is not None:
        print(f"wrote {rows} predictions to {output}", file=sys.stderr)


def _load(artifact: Path, strict: bool) -> ImagePredictor:
    from deepmine.images.predictor import ImagePredictor

    predictor = ImagePredictor.load_artifact(artifact)
    if strict:
        predictor.config.images.strict = True
    return predictor
