"""Image preprocessing with Pillow and NumPy: decode, gray/RGB, resize (pad or crop), normalize, augment.

Decoding yields uint8 (height, width, channels) arrays; batches stay uint8 until :func:`prepare_batch` turns them
into normalized float tensors and, while training, shifts/flips/rotates them on the whole batch at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepmine.images.sources import ImageData

STAT_SAMPLE = 2000


@dataclass
class ImageSpec:
    """The fitted image preprocessing state (plain JSON in the artifact)."""

    height: int
    width: int
    channels: int
    resize: str
    mean: list[float]
    std: list[float]
    augment: bool
    shift: int
    flip: bool
    rotate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ImageSpec:
        return cls(**state)


def decode(path: Path, channels: int, height: int, width: int, resize: str) -> np.ndarray:
    """One image file as uint8 (height, width, channels): converted to gray or RGB, resized keeping the aspect
    (padded with black, or center-cropped)."""
    from PIL import Image

    with Image.open(path) as image:
        image = to_8_bit(image).convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            image = _resize(image, height, width, resize)
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def to_8_bit(image):
    """16-bit gray images scaled to 8 bits (65535 → 255), every one alike; a 32-bit integer image only when it
    uses more than 8 bits. Pillow's own conversion clips them, so a dark 16-bit scan would turn white."""
    from PIL import Image

    if not (image.mode == "I" or image.mode.startswith("I;16")):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode != "I" or values.max(initial=0) > 255:
        values = np.clip(np.rint(values / 257), 0, 255)
    return Image.fromarray(values.astype(np.uint8))


def _resize(image, height: int, width: int, mode: str):
    from PIL import Image

    w, h = image.size
    scale = min(width / w, height / h) if mode == "pad" else max(width / w, height / h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = image.resize(new, Image.Resampling.BILINEAR)
    if mode == "pad":
        canvas = Image.new(image.mode, (width, height))
        canvas.paste(image, ((width - new[0]) // 2, (height - new[1]) // 2))
        return canvas
    left, top = (new[0] - width) // 2, (new[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


def conform_array(array: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """An in-memory uint8 (n, h, w, c) array brought to the spec's channels and size."""
    if array.shape[-1] != spec.channels:
        if spec.channels == 1:
            weights = np.asarray([0.299, 0.587, 0.114])
            array = np.rint(array[..., :3] @ weights).astype(np.uint8)[..., None]
        else:
            array = np.repeat(array, 3, axis=-1)
    if array.shape[1:3] != (spec.height, spec.width):
        from PIL import Image

        mode = "L" if spec.channels == 1 else "RGB"
        resized = [
            np.asarray(
                _resize(
                    Image.fromarray(a.squeeze(-1) if spec.channels == 1 else a, mode),
                    spec.height,
                    spec.width,
                    spec.resize,
                ),
                dtype=np.uint8,
            )
            for a in array
        ]
        array = np.stack(resized)
        if spec.channels == 1:
            array = array[..., None]
    return np.ascontiguousarray(array)


def fit_spec(data: ImageData, config: Any, seed: int) -> ImageSpec:
    """Channels and size from the majority of the training images, normalization from their statistics."""
    if config.channels == "auto":
        gray = sum(n for mode, n in data.modes.items() if mode in ("1", "L", "LA", "F", "I") or mode.startswith("I;16"))
        channels = 1 if gray * 2 >= sum(data.modes.values()) else 3
    else:
        channels = 1 if config.channels == "gray" else 3
    if config.size is not None:
        size = config.size if isinstance(config.size, list) else [config.size, config.size]
        height, width = int(size[0]), int(size[-1])
    else:
        (height, width), _ = data.sizes.most_common(1)[0]
        longest = max(height, width)
        if longest > config.max_size:
            height, width = (
                max(1, round(height * config.max_size / longest)),
                max(1, round(width * config.max_size / longest)),
            )
    flip = config.flip == "horizontal" or (config.flip == "auto" and channels == 3)
    shift = config.shift if config.shift is not None else max(1, round(min(height, width) / 14))
    spec = ImageSpec(
        height,
        width,
        channels,
        config.resize,
        [0.0] * channels,
        [1.0] * channels,
        config.augment,
        shift,
        flip,
        float(config.rotate),
    )
    sample = sample_pixels(data, spec, seed)
    values = sample.reshape(-1, channels).astype(np.float64) / 255.0
    spec.mean = [round(float(v), 6) for v in values.mean(axis=0)]
    spec.std = [round(float(max(v, 1e-3)), 6) for v in values.std(axis=0)]
    return spec


def sample_pixels(data: ImageData, spec: ImageSpec, seed: int) -> np.ndarray:
    """Up to STAT_SAMPLE training images (uint8) for the normalization statistics."""
    rng = np.random.default_rng(seed)
    n = len(data)
    index = np.sort(rng.choice(n, STAT_SAMPLE, replace=False)) if n > STAT_SAMPLE else np.arange(n)
    if data.array is not None:
        return conform_array(data.array[index], spec)
    return np.stack([decode(data.paths[i], spec.channels, spec.height, spec.width, spec.resize) for i in index])


def prepare_batch(
    images: torch.Tensor, spec: ImageSpec, generator: torch.Generator | None = None, channels_last: bool = False
) -> torch.Tensor:
    """uint8 (batch, h, w, c) → normalized float (batch, c, h, w); augmented when a generator is given."""
    x = images.permute(0, 3, 1, 2)
    if generator is not None and spec.augment and len(x):
        x = _augment(x, spec, generator)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    scale = 1.0 / (255.0 * torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1))
    # an explicit layout: with one channel a permuted NHWC tensor also passes as NCHW-contiguous, and convolutions
    # would silently take the channels-last path
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(x.shape, dtype=torch.float32, memory_format=layout).copy_(x)
    return out.mul_(scale).sub_(mean * 255.0 * scale)


def _augment(x: torch.Tensor, spec: ImageSpec, generator: torch.Generator) -> torch.Tensor:
    """Random integer shifts (zero fill) for each image, then flips and small rotations as the spec says."""
    b, _, h, w = x.shape
    s = spec.shift
    if s:
        padded = F.pad(x, (s, s, s, s))
        dy = torch.randint(0, 2 * s + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * s + 1, (b,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None]
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :]
        x = padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if spec.flip:
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if spec.rotate:
        angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(spec.rotate)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x
