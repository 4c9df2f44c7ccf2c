"""Assemble and write the report: one self-contained HTML file (inline CSS, base64 PNG figures, no scripts
and no external requests)."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from deepmine.report import sections

# Stable element ids, one per section, in page order (tests and links rely on them).
SECTION_IDS = {
    "profile": "section-profile",
    "preprocessing": "section-preprocessing",
    "model": "section-model",
    "learning_curves": "section-learning-curves",
    "metrics": "section-metrics",
    "confusion_matrix": "section-confusion-matrix",
    "roc_pr": "section-roc-pr",
    "calibration": "section-calibration",
    "residuals": "section-residuals",
    "importance": "section-importance",
    "examples": "section-examples",
    "model_card": "section-model-card",
}
PROFILE_IDS = ("profile-roles", "profile-missing", "profile-distributions", "profile-target", "profile-correlations")


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("deepmine.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _number
    return env


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _explain_examples(predictor, insight: dict[str, Any]) -> dict[str, Any] | None:
    examples = insight.get("examples") or []
    if not examples:
        return None
    from deepmine.explain import add_token_attributions, integrated_gradients
    from deepmine.explain.outputs import shown_prediction

    frame = pd.DataFrame.from_records(examples)
    explained = integrated_gradients(predictor, frame, modes=insight.get("baseline_modes"), where="the example rows")
    explained = add_token_attributions(predictor, frame, explained, "the example rows")
    for row in explained["rows"]:
        row["prediction"] = shown_prediction(predictor, row["prediction"])
    return {
        "rows": sections.example_rows(examples, explained, predictor.schema.target),
        "baseline": explained["baseline"],
        "steps": explained["steps"],
        "model": explained["model"],
    }


def report_context(predictor) -> dict[str, Any]:
    """Everything the template shows, for a fitted or loaded predictor."""
    insight = predictor.insight or {}
    validation = insight.get("validation")
    classify = predictor.is_classifier
    metrics = (predictor.metrics or {}).get("valid", {})
    context: dict[str, Any] = {
        "title": f"deepmine report: {predictor.schema.target} ({predictor.task})",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ids": SECTION_IDS,
        "profile_ids": PROFILE_IDS,
        "task": predictor.task,
        "target": predictor.schema.target,
        "classes": [str(c) for c in predictor.schema.classes],
        "has_insight": bool(insight),
        "profile": sections.profile_section(insight["profile"]) if "profile" in insight else None,
        "preprocessing": sections.preprocessing_section(predictor),
        "model": sections.model_section(predictor),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, float)},
        "metric_rows": metrics.get("rows"),
        "learning_png": None,
        "history": predictor.history,
        "best_epoch": predictor.training.get("best_epoch"),
        "confusion_png": None,
        "curves": None,
        "residuals": None,
        "importance": sections.importance_section(insight["importance"]) if "importance" in insight else None,
        "examples": _explain_examples(predictor, insight),
        "card": sections.model_card(predictor, insight),
    }
    from deepmine.report import plots

    context["learning_png"] = plots.learning_curves(predictor.history, context["best_epoch"])
    if classify and "confusion_matrix" in metrics:
        context["confusion_png"] = plots.confusion(metrics["confusion_matrix"], context["classes"])
        context["confusion"] = metrics["confusion_matrix"]
    if validation and classify:
        context["curves"] = sections.classification_curves(predictor.schema.classes, validation)
    if validation and predictor.task == "regression":
        context["residuals"] = sections.residual_section(validation)
    return context


def render_report(predictor) -> str:
    return _environment().get_template("report.html.j2").render(**report_context(predictor))


def render_profile(profile: dict[str, Any]) -> str:
    """The data-profile part alone (`deepmine profile DATA --html`)."""
    context = {
        "title": f"deepmine profile: {profile['source']}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ids": SECTION_IDS,
        "profile_ids": PROFILE_IDS,
        "profile": sections.profile_section(profile),
    }
    return _environment().get_template("profile.html.j2").render(**context)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    from deepmine.io_utils import check_output_file

    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_report(predictor, path: Path) -> dict[str, Any]:
    """Render and write the report; return ``{"path", "seconds", "bytes", "sections"}``."""
    return write_rendered(path, lambda: render_report(predictor), SECTION_IDS)


def write_rendered(path: Path, render: Any, ids: dict[str, str]) -> dict[str, Any]:
    """Write the HTML ``render()`` returns atomically; return ``{"path", "seconds", "bytes", "sections"}``."""
    started = time.perf_counter()
    html = render()
    write_text_atomic(path, html)
    return {
        "path": str(path),
        "seconds": round(time.perf_counter() - started, 3),
        "bytes": len(html.encode("utf-8")),
        "sections": list(ids.values()),
    }
