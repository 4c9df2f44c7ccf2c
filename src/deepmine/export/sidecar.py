"""The JSON written beside an exported graph: inputs, column orders, vocabularies, classes, usage.

The string → code lookup of categorical columns happens outside the graph; this file holds everything
a caller without deepmine needs to do it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepmine.data.schema import to_native
from deepmine.export.graph import input_names, output_name
from deepmine.features.categorical import MISSING, RESERVED, UNKNOWN

if TYPE_CHECKING:
    from deepmine.features.pipeline import FeaturePipeline
    from deepmine.predictor import Predictor

KEY_RULE = (
    "a categorical value's code is vocabularies[column][key] where key is the value as a string with surrounding "
    "whitespace stripped and integral numbers written without a decimal point (3.0 -> '3'); missing values "
    "(null, NaN) get code 1 and any value not in the vocabulary gets code 0"
)

TABLE_INPUTS_USAGE = """\
def code(column, value):
    if value is None or value != value:  # missing (None or NaN)
        return 1
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return meta["vocabularies"][column].get(str(value).strip(), 0)

inputs = {start}
if meta["numeric_columns"]:
    inputs["numeric"] = np.array(
        [[r.get(c, np.nan) for c in meta["numeric_columns"]] for r in {rows}], dtype=np.float32
    )
if meta["categorical_columns"]:
    inputs["categorical"] = np.array(
        [[code(c, r.get(c)) for c in meta["categorical_columns"]] for r in {rows}], dtype=np.int64
    )
"""

_USAGE = """\
import json
import numpy as np
{runtime_import}

meta = json.load(open("{sidecar}"))
{load}
rows = [{example}]

{table}{run}
"""

# per format: the import, loading the graph, running it on ``inputs`` (a dict of arrays by input name)
RUNTIMES = {
    "onnx": (
        "import onnxruntime as ort",
        'session = ort.InferenceSession("{model}")',
        "{output} = session.run(None, inputs)[0]",
    ),
    "torchscript": (
        "import torch",
        'module = torch.jit.load("{model}")',
        "with torch.no_grad():\n"
        '    {output} = module(*[torch.from_numpy(inputs[n]) for n in meta["input_names"]]).numpy()',
    ),
}


def example_row(pipeline: FeaturePipeline) -> str:
    """One raw row as Python source: each numeric column's median, each categorical column's first category."""
    parts = []
    for name, enc in pipeline.numeric.items():
        parts.append(f"{name!r}: {round(float(enc.median), 4)!r}")
    for name, enc in pipeline.categorical.items():
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


def table_entries(pipeline: FeaturePipeline) -> dict[str, Any]:
    """The sidecar's table part: the ``numeric``/``categorical`` inputs, column orders, vocabularies, key rule."""
    numeric, categorical = list(pipeline.numeric), list(pipeline.categorical)
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
    return {
        "inputs": inputs,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
        "vocabularies": {
            name: {category: i + RESERVED for i, category in enumerate(enc.categories)}
            for name, enc in pipeline.categorical.items()
        },
        "categorical_key_rule": KEY_RULE,
    }


# a classifier's usage ends with the class `deepmine predict` gives: the most probable, or a binary model's threshold
DECIDE_ARGMAX = 'predicted = [meta["classes"][i] for i in probabilities.argmax(axis=1)]'
DECIDE_THRESHOLD = 'predicted = [meta["classes"][int(p >= meta["decision_threshold"])] for p in probabilities[:, 1]]'


def decision_entries(predictor: Predictor) -> tuple[dict[str, Any], str]:
    """A classifier's sidecar fields saying how `deepmine predict` turns the probabilities into a class (the
    graph stops at the probabilities), and the usage line doing it; nothing for a regression model."""
    if not predictor.is_classifier:
        return {}, ""
    threshold = predictor.model_spec.get("decision_threshold")
    if threshold is None:
        return {"decision_threshold": None, "decision": "the predicted class is the most probable one"}, DECIDE_ARGMAX
    rule = (
        f"the predicted class is classes[1] when probabilities[:, 1] >= decision_threshold ({threshold:.4g}, "
        "chosen on validation by trainer.threshold), else classes[0]; the most probable class may differ"
    )
    return {"decision_threshold": float(threshold), "decision": rule}, DECIDE_THRESHOLD


def build_sidecar(
    predictor: Predictor, model_path: Path, fmt: str, exporter: str, check: dict[str, Any]
) -> dict[str, Any]:
    table = table_entries(predictor.pipeline)
    names, output = input_names(predictor), output_name(predictor)
    classes = [to_native(c) for c in predictor.schema.classes]
    if predictor.is_classifier:
        outputs = [{"name": output, "dtype": "float32", "shape": ["rows", len(classes)], "columns": classes}]
    else:
        outputs = [{"name": output, "dtype": "float64", "shape": ["rows"], "target": predictor.schema.target}]
    decision, decide = decision_entries(predictor)
    sidecar_name = f"{model_path.name}.json"
    runtime, load, run = RUNTIMES[fmt]
    usage = _USAGE.format(
        runtime_import=runtime,
        sidecar=sidecar_name,
        load=load.format(model=model_path.name),
        example=example_row(predictor.pipeline),
        table=TABLE_INPUTS_USAGE.format(start="{}", rows="rows"),
        run=run.format(output=output) + (f"\n{decide}" if decide else ""),
    )
    return {
        **provenance(model_path, fmt, exporter),
        "task": predictor.task,
        "target": predictor.schema.target,
        "classes": classes,
        "inputs": table["inputs"],
        "input_names": names,
        "outputs": outputs,
        **decision,
        **{key: value for key, value in table.items() if key != "inputs"},
        "check": check,
        "usage": usage,
    }
