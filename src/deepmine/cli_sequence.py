"""`deepmine fit DATA --task sequence`, and `evaluate`/`predict` for sequence artifacts.

DATA holds wide rows: one series per row, the label in the first column (or the column named by --target,
a name or a position), every other column one step (``--set sequence.channels=C``: C values per step).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from deepmine.config import DataConfig


def is_sequence_artifact(path: Path) -> bool:
    try:
        return json.loads((Path(path) / "deepmine.json").read_text(encoding="utf-8")).get("kind") == "sequence"
    except (OSError, ValueError, AttributeError):
        return False


def _read(data: str, read: DataConfig, label: Any, channels: int):
    from deepmine.data.sources import describe, load_table
    from deepmine.sequences.sources import from_wide

    where = describe(data)
    if read.header is None and str(data).lower().endswith(".tsv"):
        read = read.model_copy(update={"header": _has_header(data)})
    frame = load_table(data, read)
    if label == 0:
        _warn_of_a_named_label(frame, where)
    values, lengths, y = from_wide(frame, label, where, channels)
    return values, lengths, y, where


LABEL_NAMES = ("label", "target", "class", "y")


def _warn_of_a_named_label(frame, where: str) -> None:
    """The label is taken from the first column; a later column named like a label is then read as a step."""
    import warnings

    from deepmine.exceptions import DeepmineWarning

    named = [c for c in frame.columns[1:] if str(c).strip().lower() in LABEL_NAMES]
    if named:
        warnings.warn(
            f"{where}: the label is read from the first column '{frame.columns[0]}', and column '{named[0]}' "
            f"becomes a time step; if '{named[0]}' is the label, pass --target {named[0]}",
            DeepmineWarning,
            stacklevel=2,
        )


def _has_header(path: str) -> bool:
    """UCR .tsv files have no header: a first line of numbers is data."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().strip().split("\t")
    try:
        [float(v) for v in first if v]
    except ValueError:
        return True
    return False


def fit_command(data: str, out: Path | None, overrides: dict[str, Any], config: Path | None, json_out: bool) -> None:
    """Fit a sequence classifier/regressor on wide rows and save the artifact."""
    from deepmine.config import build_config
    from deepmine.io_utils import check_replaceable
    from deepmine.sequences.config import SequenceRunConfig
    from deepmine.tasks.sequence import fit_sequences
    from deepmine.tracking import record_fit, tracked_fit

    overrides = dict(overrides)
    overrides.pop("task", None)
    label = overrides.pop("columns.target", None)
    run = build_config(config, overrides, schema=SequenceRunConfig, aliases={}, command="fit --task sequence")
    if label is not None:
        run.sequence.label = label
    out = out or Path(f"{Path(data).name.split('.')[0]}-model")
    check_replaceable(out)  # before training, not when saving
    values, lengths, y, where = _read(data, run.data, run.sequence.label, run.sequence.channels)
    predictor, tracker = tracked_fit(run, lambda: fit_sequences(values, y, run, lengths, where))
    predictor.save(out)
    summary = {
        "artifact": str(out),
        "task": predictor.task,
        "model": predictor.spec["names"][0],
        "members": predictor.spec["members"],
        "rows": predictor.training["rows"],
        "valid_rows": predictor.training["valid_rows"],
        "steps": predictor.state["steps"],
        "channels": predictor.state["channels"],
        "epochs": predictor.training["epochs"],
        "seconds": predictor.training["seconds"],
        **{k: v for k, v in predictor.metrics.get("valid", {}).items() if k != "rows"},
        **record_fit(tracker, predictor, str(data), out),
    }
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    print(
        f"trained {summary['members']} × {summary['model']} on {summary['rows']} series in "
        f"{summary['seconds']:.1f} s; artifact written to {out}",
        file=sys.stderr,
    )


def evaluate_command(artifact: Path, data: str, json_out: bool, read: DataConfig) -> None:
    from deepmine.tasks.sequence import SequencePredictor

    predictor = SequencePredictor.load(artifact)
    values, lengths, y, where = _read(data, read, predictor.config.sequence.label, predictor.state["channels"])
    metrics = predictor.score(values, y, lengths, where)
    if json_out:
        sys.stdout.write(json.dumps(metrics) + "\n")
        return
    print(
        ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()), file=sys.stderr
    )


def predict_command(artifact: Path, data: str, output: Path | None, read: DataConfig) -> None:
    """One prediction per row of DATA (wide rows, with or without the label column)."""
    import pandas as pd

    from deepmine.data.sources import describe, load_table
    from deepmine.sequences.sources import from_wide
    from deepmine.tasks.sequence import SequencePredictor

    predictor = SequencePredictor.load(artifact)
    if read.header is None and str(data).lower().endswith(".tsv"):
        read = read.model_copy(update={"header": _has_header(data)})
    frame = load_table(data, read)
    label = _label_if_present(frame, predictor, describe(data))
    values, lengths, _ = from_wide(frame, label, describe(data), predictor.state["channels"])
    if predictor.task == "classification":
        proba = predictor.predict_proba(values, lengths, describe(data))
        out = pd.DataFrame({"prediction": predictor.classes_[proba.argmax(axis=1)]})
        for i, name in enumerate(predictor.classes_):
            out[f"proba_{name}"] = proba[:, i]
    else:
        out = pd.DataFrame({"prediction": predictor.predict(values, lengths, describe(data))})
    from deepmine.batch import write_predictions

    write_predictions(iter([out]), output)  # atomic: an error leaves no half-written file


def _label_if_present(frame, predictor, where: str) -> str | int | None:
    """The training label column when DATA holds it: by name; else by width (steps × channels + 1 columns); else,
    for a classifier, when that column holds only training classes (a series of another length keeps its label)."""
    from deepmine.sequences.sources import label_column

    label = predictor.config.sequence.label
    if isinstance(label, str) and not label.isdigit():
        return label if label in frame.columns else None
    width = predictor.state["steps"] * predictor.state["channels"]
    if frame.shape[1] in (width, width + 1) or predictor.task != "classification" or frame.shape[1] < 2:
        return label if frame.shape[1] == width + 1 else None
    column = frame[label_column(frame, label, where)].dropna()
    if column.nunique() < 2 or not column.map(str).isin(set(predictor.classes_)).all():
        return None
    import warnings

    from deepmine.exceptions import DeepmineWarning

    warnings.warn(
        f"{where}: column {label!r} holds only training classes, so it is read as the label, not as a step",
        DeepmineWarning,
        stacklevel=2,
    )
    return label
