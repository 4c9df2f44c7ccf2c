"""Write a pipeline graph as ONNX or TorchScript, and run a written file back."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepmine.exceptions import ConfigError, ExportError

OPSET = 17
DYNAMO_OPSET = 18  # the torch.export-based exporter starts at 18


class MissingDependencyError(ConfigError):
    """An optional package the export needs is not installed."""


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"ONNX export needs the '{module}' package, which is not installed; "
            "install the export extras: pip install 'deepmine[export]'"
        ) from err


def write_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], names: list[str], output: str, path: Path) -> str:
    """Export with the TorchScript-based exporter (dynamic batch axis) or, if that fails or is gone,
    with the torch.export-based one; return which exporter wrote ``path``."""
    _require("onnx")
    _require("onnxruntime")  # the check runs the written graph with it
    try:
        _legacy_onnx(module, example, names, output, path)
        return "onnx-torchscript"
    except Exception as legacy_error:  # removed in this torch, or an op it cannot express
        path.unlink(missing_ok=True)
        try:
            _dynamo_onnx(module, example, names, output, path)
        except Exception as dynamo_error:
            path.unlink(missing_ok=True)
            first = lambda err: (str(err).strip().splitlines() or [type(err).__name__])[0]  # noqa: E731
            raise ExportError(
                f"torch could not export this model to ONNX (TorchScript-based exporter: {first(legacy_error)}; "
                f"torch.export-based exporter: {first(dynamo_error)}); try --format torchscript"
            ) from dynamo_error
        return "onnx-dynamo"


def _legacy_onnx(module, example, names, output, path: Path) -> None:
    axes = {name: {0: "rows"} for name in [*names, output]}
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )


def _dynamo_onnx(module, example, names, output, path: Path) -> None:
    _require("onnxscript")
    shapes = _dynamic_rows(module, len(names))
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    # the exporter reports progress on stdout, which belongs to --json
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                module,
                example,
                dynamo=True,
                verbose=False,
                input_names=names,
                output_names=[output],
                dynamic_shapes=shapes,
                opset_version=DYNAMO_OPSET,
                external_data=False,
            )
            program.save(str(path), external_data=False)
        finally:
            quiet.setLevel(level)


def _dynamic_rows(module: nn.Module, inputs: int) -> dict[str, Any]:
    """torch.export's ``dynamic_shapes`` for ``inputs`` inputs sharing one dynamic batch axis, keyed by the
    forward's parameter names (a ``*args`` parameter takes the rest as a tuple)."""
    import inspect

    rows = torch.export.Dim("rows", min=1)
    specs = [{0: rows} for _ in range(inputs)]
    shapes: dict[str, Any] = {}
    for param in inspect.signature(module.forward).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            if specs:
                shapes[param.name] = tuple(specs)
            break
        if specs:
            shapes[param.name] = specs.pop(0)
    return shapes


def write_torchscript(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> str:
    """Trace ``module`` (no data-dependent control flow, so the trace holds for any batch size)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path))
    return "torch.jit.trace"


def run_onnx(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def run_torchscript(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return module(*[torch.from_numpy(a) for a in inputs.values()]).numpy()
