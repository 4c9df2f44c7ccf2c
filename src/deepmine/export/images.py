"""Export an image classifier (``"kind": "image"``) as one ONNX or TorchScript graph.

The graph takes ``pixels``: uint8 ``(images, height, width, channels)`` already brought to the artifact's
size, and does the rest: per-channel normalisation with the training statistics, the network, softmax. Decoding
and resizing stay outside (they need an image library); the sidecar JSON spells out the rule and carries a
Pillow snippet that reproduces ``deepmine predict`` exactly. Verified against the predictor before it is moved
into place, like the tabular export.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deepmine.exceptions import ConfigError, ExportError

if TYPE_CHECKING:
    from deepmine.export import ExportResult
    from deepmine.images.predictor import ImagePredictor

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
    image = Image.open(path).convert(pre["mode"])
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
{run}
labels = [meta["classes"][i] for i in probabilities.argmax(axis=1)]
"""


class ImageGraph(nn.Module):
    """uint8 NHWC pixels → normalised NCHW floats (as ``prepare_batch``) → the network → softmax."""

    def __init__(self, predictor: ImagePredictor) -> None:
        super().__init__()
        spec = predictor.spec
        self.model = predictor.model.eval()
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
        scale = 1.0 / (255.0 * torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("scale", scale)
        self.register_buffer("offset", mean * 255.0 * scale)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).to(torch.float32)
        return torch.softmax(self.model(x * self.scale - self.offset), dim=1)


def sample_pixels(predictor: ImagePredictor, sample: Any, rows: int) -> tuple[np.ndarray, str]:
    """uint8 (rows, h, w, c) pixels to check the export on: the first ``rows`` images of ``sample`` decoded as
    ``deepmine predict`` decodes them, or random images of the artifact's size (seed 0) without one."""
    spec = predictor.spec
    if sample is None:
        noise = np.random.default_rng(0).integers(0, 256, (rows, spec.height, spec.width, spec.channels))
        return noise.astype(np.uint8), f"{rows} random images"
    from deepmine.images.dataset import decoded

    data = predictor.load(sample)
    pixels = decoded(data.subset(np.arange(min(rows, len(data)))), spec)
    return pixels, f"{len(pixels)} images of {data.where}"


def export_image_predictor(
    predictor: ImagePredictor, path: str | Path, fmt: str, *, sample: Any = None, rows: int = IMAGE_CHECK_ROWS
) -> ExportResult:
    """Write ``predictor`` as one graph to ``path`` (and ``<path>.json``), checked against ``predict_proba``."""
    from deepmine.export import TOLERANCE, _check_format, write_checked

    fmt = _check_format(fmt)
    if predictor.tabular is not None:
        raise ExportError("cannot export an image model that also reads table columns; export takes image-only models")
    if rows < 1:
        raise ConfigError(f"rows must be at least 1, got {rows}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels, described = sample_pixels(predictor, sample, rows)
    expected = predictor.predict_proba(pixels).astype("float64")
    module = ImageGraph(predictor)
    sidecar = lambda exporter, check: build_image_sidecar(predictor, path, fmt, exporter, check)  # noqa: E731
    return write_checked(module, [INPUT], OUTPUT, fmt, path, {INPUT: pixels}, expected, TOLERANCE, described, sidecar)


def build_image_sidecar(
    predictor: ImagePredictor, model_path: Path, fmt: str, exporter: str, check: dict[str, Any]
) -> dict[str, Any]:
    """What a caller without deepmine needs: the input layout, the resize rule, the classes, a usage snippet."""
    from deepmine.export.sidecar import provenance

    spec = predictor.spec
    if fmt == "onnx":
        runtime, run = (
            "import onnxruntime as ort",
            (
                f'session = ort.InferenceSession("{model_path.name}")\n'
                f'probabilities = session.run(None, {{"{INPUT}": batch}})[0]'
            ),
        )
    else:
        runtime, run = (
            "import torch",
            f'module = torch.jit.load("{model_path.name}")\n'
            "with torch.no_grad():\n"
            "    probabilities = module(torch.from_numpy(batch)).numpy()",
        )
    usage = _USAGE.format(
        runtime_import=runtime, sidecar=f"{model_path.name}.json", run=run, files='["a.png", "b.jpg"]'
    )
    return {
        **provenance(model_path, fmt, exporter),
        "kind": "image",
        "task": predictor.task,
        "classes": predictor.classes,
        "inputs": [{"name": INPUT, "dtype": "uint8", "shape": ["images", spec.height, spec.width, spec.channels]}],
        "input_names": [INPUT],
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
