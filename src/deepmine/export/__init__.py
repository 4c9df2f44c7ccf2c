"""Export a fitted tabular Predictor as one ONNX or TorchScript graph, preprocessing included.

The numeric preprocessing (imputation, missing flags, scaling, piecewise-linear bins), the model and the
output head (softmax, or the value on the target's scale) are in the graph; categorical string → code
lookup is done by the caller with the vocabularies in the sidecar JSON written beside the file. Every
export is verified against the predictor on up to 1,000 rows before it is moved into place.

    from deepmine.export import export_predictor
    result = export_predictor(deepmine.load("adult-model"), "adult.onnx", "onnx", sample="adult_test.csv")
    result.max_abs_diff  # ≤ 1e-5, or ExportCheckError
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepmine.exceptions import (
    ConfigError,
    DataError,
    DeepmineWarning,
    ExportCheckError,
    ExportError,
    did_you_mean,
)
from deepmine.export.check import max_abs_diff, reference_outputs, sample_rows
from deepmine.export.graph import build_graph, check_exportable, graph_inputs, input_names, output_name
from deepmine.export.sidecar import build_sidecar
from deepmine.export.writers import run_onnx, run_torchscript, write_onnx, write_torchscript
from deepmine.io_utils import check_output_file

if TYPE_CHECKING:
    from deepmine.predictor import Predictor

__all__ = ["FORMATS", "ExportResult", "export_predictor", "graph_inputs", "ExportError", "ExportCheckError"]

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
CHECK_ROWS = 1000
TOLERANCE = 1e-5


@dataclass
class ExportResult:
    """Where the graph went and how closely it reproduces the predictor."""

    path: Path
    sidecar: Path
    format: str
    exporter: str
    rows: int
    max_abs_diff: float
    tolerance: float
    sample: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"], out["sidecar"] = str(self.path), str(self.sidecar)
        return out


def default_path(artifact: str | Path, fmt: str) -> Path:
    """``adult-model`` → ``adult-model.onnx`` (beside the artifact folder)."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + FORMATS[_check_format(fmt)])


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'{did_you_mean(fmt, FORMATS)}; choose one of {list(FORMATS)}")
    return fmt


def _check_frame(predictor: Predictor, sample: Any, rows: int) -> tuple[Any, str]:
    if sample is None:
        return sample_rows(predictor, rows), f"{rows} rows generated from the pipeline state"
    from deepmine.data.sources import describe, load_table

    frame = load_table(sample, predictor.config.data).head(rows).reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{describe(sample)} has no rows to check the export on; pass a file with data rows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepmineWarning)  # extra columns are named once, when the rows are scored
        predictor.pipeline.check_columns(frame, describe(sample))  # a missing column named with its file
    return frame, f"{len(frame)} rows of {describe(sample)}"


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def export_predictor(
    predictor: Predictor,
    path: str | Path,
    format: str = "onnx",
    *,
    sample: Any = None,
    rows: int = CHECK_ROWS,
    tolerance: float = TOLERANCE,
) -> ExportResult:
    """Write ``predictor`` as one graph to ``path`` (and ``<path>.json`` beside it), verified first.

    ``sample`` (a file, SQL URL or DataFrame of raw rows; its first ``rows`` are used) is what the
    exported graph is checked on; without it rows are generated from the pipeline state. Outputs must
    match :meth:`Predictor.predict_proba` (classifiers) or :meth:`Predictor.predict` (regression) within
    ``tolerance`` (for regression, times the target's standard deviation when that is above 1), else
    :class:`ExportCheckError` and nothing is written.
    """
    fmt = _check_format(format)
    path = Path(path)
    check_output_file(path)
    check_exportable(predictor)
    if rows < 1:
        raise ConfigError(f"rows must be at least 1, got {rows}")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame, described = _check_frame(predictor, sample, rows)
    expected = reference_outputs(predictor, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepmineWarning)  # extra columns: the line above already said so
        inputs = graph_inputs(predictor, frame)
    allowed = tolerance if predictor.is_classifier else tolerance * max(1.0, abs(predictor.pipeline.target_std))

    names = input_names(predictor)
    sidecar = lambda exporter, check: build_sidecar(predictor, path, fmt, exporter, check)  # noqa: E731
    return write_checked(
        build_graph(predictor), names, output_name(predictor), fmt, path, inputs, expected, allowed, described, sidecar
    )


def write_checked(
    module: torch.nn.Module,
    names: list[str],
    output: str,
    fmt: str,
    path: Path,
    inputs: dict[str, np.ndarray],
    expected: np.ndarray,
    allowed: float,
    described: str,
    sidecar: Any,
) -> ExportResult:
    """Write ``module`` as ``fmt`` to a temporary file, run it back on ``inputs``, and only when its outputs are
    within ``allowed`` of ``expected`` move it and its sidecar JSON (``sidecar(exporter, check)``) into place."""
    rows = len(expected)
    take = np.arange(min(rows, 8)) if rows >= 2 else np.zeros(2, dtype=int)
    example = tuple(torch.from_numpy(np.ascontiguousarray(inputs[n][take])) for n in names)
    model_tmp = _temp_beside(path)
    sidecar_path = path.with_name(path.name + ".json")
    sidecar_tmp = None
    try:
        if fmt == "onnx":
            exporter = write_onnx(module, example, names, output, model_tmp)
            got = run_onnx(model_tmp, inputs)
        else:
            exporter = write_torchscript(module, example, model_tmp)
            got = run_torchscript(model_tmp, inputs)
        diff = max_abs_diff(expected, got)
        if not diff <= allowed:
            raise ExportCheckError(
                f"the exported {fmt} graph differs from the predictor by up to {diff:.3g} on {described} "
                f"(allowed {allowed:.3g}); nothing was written — please report this with the artifact"
            )
        check = {"rows": rows, "sample": described, "max_abs_diff": diff, "tolerance": allowed}
        sidecar_tmp = _temp_beside(sidecar_path)
        text = json.dumps(sidecar(exporter, check), indent=2, ensure_ascii=False) + "\n"
        sidecar_tmp.write_text(text, encoding="utf-8")
        for written in (model_tmp, sidecar_tmp):
            os.chmod(written, 0o644)  # mkstemp makes files private; an export is meant to be shared
        os.replace(model_tmp, path)
        os.replace(sidecar_tmp, sidecar_path)
    finally:
        model_tmp.unlink(missing_ok=True)
        if sidecar_tmp is not None:
            sidecar_tmp.unlink(missing_ok=True)
    return ExportResult(path, sidecar_path, fmt, exporter, rows, diff, allowed, described)
