"""Export an image classifier (``"kind": "image"``) as one ONNX or TorchScript graph.

The graph takes ``pixels``: uint8 ``(images, height, width, channels)`` already brought to the artifact's
size, and does the rest: per-channel normalisation with the training statistics, the network, softmax. Decoding
and resizing stay outside (they need an image library); the sidecar JSON spells out the rule and carries a
Pillow snippet that reproduces ``deepmine predict`` exactly. A model that also reads table columns takes them
as the tabular export does (``numeric`` raw values, ``categorical`` codes from the sidecar's vocabularies), one
row per image. Verified against the predictor before it is moved into place, like the tabular export.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deepmine.exceptions import ConfigError
from deepmine.io_utils import check_output_file

if TYPE_CHECKING:
    from deepmine.export import ExportResult
    from deepmine.images.predictor import ImagePredictor
    from deepmine.images.sources import ImageData

INPUT, OUTPUT = "pixels", "probabilities"
IMAGE_CHECK_ROWS = 64
RESIZE_RULE = {
    "pad": "keep the aspect ratio, bilinear-resize to fit inside height x width, paste centred on black",
    "crop": "keep the aspect ratio, bilinear-resize to cover height x width, centre-crop",
}

_USAGE = """\
import json
import numpy as np
from PIL import Image
{runtime_import}

meta = json.load(open("{sidecar}"))
pre = meta["preprocessing"]

def pixels(path):
    # one image file as deepmine decodes it: gray or RGB, resized keeping the aspect, padded or cropped
    image = Image.open(path)
    if image.mode == "I" or image.mode.startswith("I;16"):  # 16-bit gray: scaled to 8 bits, not clipped
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "I" or values.max(initial=0) > 255:
            values = np.clip(np.rint(values / 257), 0, 255)
        image = Image.fromarray(values.astype(np.uint8))
    image = image.convert(pre["mode"])
    width, height = pre["width"], pre["height"]
    if image.size != (width, height):
        w, h = image.size
        fit = min if pre["resize"] == "pad" else max
        scale = fit(width / w, height / h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        if pre["resize"] == "pad":
            canvas = Image.new(image.mode, (width, height))
            canvas.paste(image, ((width - size[0]) // 2, (height - size[1]) // 2))
            image = canvas
        else:
            left, top = (size[0] - width) // 2, (size[1] - height) // 2
            image = image.crop((left, top, left + width, top + height))
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if pre["mode"] == "L" else array

batch = np.stack([pixels(p) for p in {files}])
{table}{run}
labels = [meta["classes"][i] for i in probabilities.argmax(axis=1)]
"""

_TABLE_USAGE = """\
records = {records}  # each image's other columns, in the same order as the files

"""


class ImageGraph(nn.Module):
    """uint8 NHWC pixels → normalised NCHW floats (as ``prepare_batch``) [+ the table columns, preprocessed as
    the tabular graph does] → the network → softmax."""

    def __init__(self, predictor: ImagePredictor) -> None:
        super().__init__()
        from deepmine.export.graph import TablePreprocess

        spec = predictor.spec
        self.model = predictor.model.eval()
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
        scale = 1.0 / (255.0 * torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("scale", scale)
        self.register_buffer("offset", mean * 255.0 * scale)
        self.table = None if predictor.tabular is None else TablePreprocess(predictor.tabular)
        self.names = [INPUT, *(self.table.names if self.table is not None else [])]

    def forward(self, pixels: torch.Tensor, *table: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).to(torch.float32) * self.scale - self.offset
        columns = self.table.split(pixels, table) if self.table is not None else ()
        return torch.softmax(self.model(x, *columns), dim=1)


def sample_images(predictor: ImagePredictor, sample: Any, rows: int) -> ImageData:
    """Images (as uint8 pixels, with their table rows for an image + table model) to check the export on: the
    first ``rows`` of ``sample`` decoded as ``deepmine predict`` decodes them, or without one random images of
    the artifact's size and table rows generated from the fitted pipeline (seed 0)."""
    from deepmine.images.sources import ImageData

    spec = predictor.spec
    if sample is None:
        from deepmine.export.check import pipeline_rows

        noise = np.random.default_rng(0).integers(0, 256, (rows, spec.height, spec.width, spec.channels))
        table = None if predictor.tabular is None else pipeline_rows(predictor.tabular, rows)
        names = [str(i) for i in range(rows)]
        return ImageData(f"{rows} random images", names, array=noise.astype(np.uint8), table=table)
    from deepmine.images.dataset import decoded

    data = predictor.load(sample)
    data = data.subset(np.arange(min(rows, len(data))))
    where = f"{len(data)} images of {data.where}"
    return ImageData(where, data.names, array=decoded(data, spec), table=data.table)


def export_image_predictor(
    predictor: ImagePredictor, path: str | Path, fmt: str, *, sample: Any = None, rows: int = IMAGE_CHECK_ROWS
) -> ExportResult:
    """Write ``predictor`` as one graph to ``path`` (and ``<path>.json``), checked against ``predict_proba``."""
    from deepmine.export import TOLERANCE, _check_format, write_checked

    fmt = _check_format(fmt)
    module = ImageGraph(predictor)  # an ExportError naming any table column the graph cannot take
    if rows < 1:
        raise ConfigError(f"rows must be at least 1, got {rows}")
    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = sample_images(predictor, sample, rows)
    expected = torch.softmax(predictor.outputs(data), dim=1).numpy().astype("float64")
    inputs = {INPUT: data.array}
    if predictor.tabular is not None:
        from deepmine.export.graph import table_inputs

        inputs.update(table_inputs(predictor.tabular, data.table))
    sidecar = lambda exporter, check: build_image_sidecar(predictor, path, fmt, exporter, check)  # noqa: E731
    return write_checked(module, module.names, OUTPUT, fmt, path, inputs, expected, TOLERANCE, data.where, sidecar)


def build_image_sidecar(
    predictor: ImagePredictor, model_path: Path, fmt: str, exporter: str, check: dict[str, Any]
) -> dict[str, Any]:
    """What a caller without deepmine needs: the input layout, the resize rule, the classes, a usage snippet."""
    from deepmine.export.sidecar import provenance

    spec = predictor.spec
    names, table, inputs_code = [INPUT], {"inputs": []}, 'inputs = {"pixels": batch}\n'
    if predictor.tabular is not None:
        from deepmine.export.graph import table_input_names
        from deepmine.export.sidecar import TABLE_INPUTS_USAGE, example_row, table_entries

        names += table_input_names(predictor.tabular)
        table = table_entries(predictor.tabular)
        for entry in table["inputs"]:
            entry["shape"][0] = "images"
        records = "[" + ", ".join([example_row(predictor.tabular)] * 2) + "]"
        inputs_code = _TABLE_USAGE.format(records=records) + TABLE_INPUTS_USAGE.format(
            start='{"pixels": batch}', rows="records"
        )
    from deepmine.export.sidecar import RUNTIMES

    runtime, load, call = RUNTIMES[fmt]
    run = load.format(model=model_path.name) + "\n" + call.format(output=OUTPUT)
    usage = _USAGE.format(
        runtime_import=runtime,
        sidecar=f"{model_path.name}.json",
        run=run,
        files='["a.png", "b.jpg"]',
        table=inputs_code,
    )
    pixels = {"name": INPUT, "dtype": "uint8", "shape": ["images", spec.height, spec.width, spec.channels]}
    return {
        **provenance(model_path, fmt, exporter),
        "kind": "image",
        "task": predictor.task,
        "classes": predictor.classes,
        "inputs": [pixels, *table.pop("inputs")],
        "input_names": names,
        **table,
        "outputs": [{"name": OUTPUT, "dtype": "float32", "shape": ["images", len(predictor.classes)]}],
        "preprocessing": {
            "mode": "L" if spec.channels == 1 else "RGB",
            "height": spec.height,
            "width": spec.width,
            "resize": spec.resize,
            "rule": RESIZE_RULE.get(spec.resize, spec.resize),
            "normalisation": "inside the graph (per-channel training mean and std)",
        },
        "check": check,
        "usage": usage,
    }
