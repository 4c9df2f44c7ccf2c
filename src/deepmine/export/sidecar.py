"""The JSON written beside an exported graph: inputs, column orders, vocabularies, classes, usage.

The string → code lookup of categorical columns happens outside the graph; this file holds everything
a caller without deepmine needs to do it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepmine.data.schema import to_native
from deepmine.export.graph import categorical_columns, input_names, numeric_columns, output_name
from deepmine.features.categorical import MISSING, RESERVED, UNKNOWN

if TYPE_CHECKING:
    from deepmine.predictor import Predictor

KEY_RULE = (
    "a categorical value's code is vocabularies[column][key] where key is the value as a string with surrounding "
    "whitespace stripped and integral numbers written without a decimal point (3.0 -> '3'); missing values "
    "(null, NaN) get code 1 and any value not in the vocabulary gets code 0"
)

_ONNX_USAGE = """\
import json
import numpy as np
import onnxruntime as ort

meta = json.load(open("{sidecar}"))
session = ort.InferenceSession("{model}")
rows = [{example}]

def code(column, value):
    if value is None or value != value:  # missing (None or NaN)
        return 1
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return meta["vocabularies"][column].get(str(value).strip(), 0)

inputs = {{}}
if meta["numeric_columns"]:
    inputs["numeric"] = np.array(
        [[r.get(c, np.nan) for c in meta["numeric_columns"]] for r in rows], dtype=np.float32
    )
if meta["categorical_columns"]:
    inputs["categorical"] = np.array(
        [[code(c, r.get(c)) for c in meta["categorical_columns"]] for r in rows], dtype=np.int64
    )
{output} = session.run(None, inputs)[0]
"""

_TORCHSCRIPT_USAGE = """\
import torch
module = torch.jit.load("{model}")
# build the same numpy inputs as for ONNX (see the 'inputs' entry), then:
{output} = module({args})
"""


def _example_row(predictor: Predictor) -> str:
    parts = []
    for name, enc in predictor.pipeline.numeric.items():
        parts.append(f"{name!r}: {round(float(enc.median), 4)!r}")
    for name, enc in predictor.pipeline.categorical.items():
        parts.append(f"{name!r}: {enc.categories[0] if enc.categories else None!r}")
    return "{" + ", ".join(parts) + "}"


def provenance(model_path: Path, fmt: str, exporter: str) -> dict[str, Any]:
    """The sidecar fields every export starts with: format, file, exporter, when and by which deepmine."""
    from deepmine import __version__

    return {
        "format": fmt,
        "file": model_path.name,
        "exporter": exporter,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "deepmine_version": __version__,
    }


def build_sidecar(
    predictor: Predictor, model_path: Path, fmt: str, exporter: str, check: dict[str, Any]
) -> dict[str, Any]:
    numeric, categorical = numeric_columns(predictor), categorical_columns(predictor)
    names, output = input_names(predictor), output_name(predictor)
    inputs = []
    if numeric:
        inputs.append(
            {
                "name": "numeric",
                "dtype": "float32",
                "shape": ["rows", len(numeric)],
                "columns": numeric,
                "missing": "NaN (infinite values are also treated as missing)",
            }
        )
    if categorical:
        inputs.append(
            {
                "name": "categorical",
                "dtype": "int64",
                "shape": ["rows", len(categorical)],
                "columns": categorical,
                "codes": {"other": UNKNOWN, "missing": MISSING, "first_category": RESERVED},
            }
        )
    classes = [to_native(c) for c in predictor.schema.classes]
    if predictor.is_classifier:
        outputs = [{"name": output, "dtype": "float32", "shape": ["rows", len(classes)], "columns": classes}]
    else:
        outputs = [{"name": output, "dtype": "float64", "shape": ["rows"], "target": predictor.schema.target}]
    sidecar_name = f"{model_path.name}.json"
    if fmt == "onnx":
        usage = _ONNX_USAGE.format(
            sidecar=sidecar_name, model=model_path.name, example=_example_row(predictor), output=output
        )
    else:
        args = ", ".join(f"torch.from_numpy(inputs[{n!r}])" for n in names)
        usage = _TORCHSCRIPT_USAGE.format(model=model_path.name, output=output, args=args)
    return {
        **provenance(model_path, fmt, exporter),
        "task": predictor.task,
        "target": predictor.schema.target,
        "classes": classes,
        "inputs": inputs,
        "input_names": names,
        "outputs": outputs,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
        "vocabularies": {
            name: {category: i + RESERVED for i, category in enumerate(enc.categories)}
            for name, enc in predictor.pipeline.categorical.items()
        },
        "categorical_key_rule": KEY_RULE,
        "check": check,
        "usage": usage,
    }
