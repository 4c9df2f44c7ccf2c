"""Image networks: a registry with the classic digit CNN and a stronger default (VGG-style with batch norm),
a builder that turns an explicit layer list into a net exactly, and the image + tabular model."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from deepmine.exceptions import ConfigError, did_you_mean

T = TypeVar("T", bound=Callable)
IMAGE_MODELS: dict[str, Callable[..., nn.Module]] = {}

CLASSIC_LAYERS = [
    "conv(32,3)",
    "maxpool(2)",
    "conv(64,3)",
    "maxpool(2)",
    "conv(64,3)",
    "flatten",
    "dense(64)",
    "dense({classes})",
]


def register_image_model(name: str) -> Callable[[T], T]:
    """Register an image model builder ``(in_channels, height, width, classes, config) -> nn.Module``."""

    def decorate(builder: T) -> T:
        if name in IMAGE_MODELS:
            raise ValueError(f"image model '{name}' is registered twice")
        IMAGE_MODELS[name] = builder
        return builder

    return decorate


def get_image_model(name: str) -> Callable[..., nn.Module]:
    if name not in IMAGE_MODELS:
        raise ConfigError(
            f"unknown image model '{name}'{did_you_mean(name, IMAGE_MODELS)}; registered: {sorted(IMAGE_MODELS)}"
        )
    return IMAGE_MODELS[name]


# ---- the layer-list builder -------------------------------------------------------------------------
_LAYER = re.compile(r"^\s*([a-z_0-9]+)\s*(?:\(([^)]*)\))?\s*$")
LAYER_HELP = (
    "conv(filters,kernel[,stride]), maxpool(k), avgpool(k), bn, dropout(p), flatten, gap "
    "(global average pool), dense(units), relu"
)


def parse_layers(layers: list[str] | str) -> list[tuple[str, list[float]]]:
    """``"conv(32,3) -> maxpool(2) -> flatten -> dense(10)"`` (or a list of those items) → [(kind, args)]."""
    items = re.split(r"\s*(?:->|→)\s*", layers) if isinstance(layers, str) else list(layers)
    parsed = []
    for item in items:
        match = _LAYER.match(str(item).lower())
        if not match:
            raise ConfigError(f"model.layers: cannot read layer '{item}'; write layers like {LAYER_HELP}")
        kind, raw = match.group(1), match.group(2)
        try:
            args = [float(a) for a in raw.split(",")] if raw and raw.strip() else []
        except ValueError as err:
            raise ConfigError(f"model.layers: layer '{item}' has a non-numeric argument; e.g. conv(32,3)") from err
        parsed.append((kind, args))
    return parsed


def build_layers(layers: list[str] | str, in_channels: int, height: int, width: int, classes: int) -> nn.Sequential:
    """Exactly the listed layers; conv and dense get a ReLU except the last dense (the class scores)."""
    spec = parse_layers(layers)
    if not spec or spec[-1][0] != "dense" or int(spec[-1][1][0]) != classes:
        raise ConfigError(
            f"model.layers must end with dense({classes}), one output per class; got "
            f"'{layers[-1] if isinstance(layers, list) and layers else layers}'"
        )
    modules: list[nn.Module] = []
    shape: tuple[int, ...] = (in_channels, height, width)
    for position, (kind, args) in enumerate(spec):
        last = position == len(spec) - 1
        if kind == "conv":
            _need(kind, args, 2, 3)
            stride = int(args[2]) if len(args) > 2 else 1
            if len(shape) != 3:
                raise ConfigError(f"model.layers: conv after flatten at position {position + 1}")
            layer = nn.Conv2d(shape[0], int(args[0]), int(args[1]), stride=stride)
            shape = (int(args[0]), (shape[1] - int(args[1])) // stride + 1, (shape[2] - int(args[1])) // stride + 1)
            modules += [layer, nn.ReLU()]
        elif kind in ("maxpool", "avgpool"):
            _need(kind, args, 1, 1)
            k = int(args[0])
            modules.append(nn.MaxPool2d(k) if kind == "maxpool" else nn.AvgPool2d(k))
            shape = (shape[0], shape[1] // k, shape[2] // k)
        elif kind == "bn":
            modules.append(nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0]))
        elif kind == "dropout":
            _need(kind, args, 1, 1)
            modules.append(nn.Dropout(args[0]))
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind in ("flatten", "gap"):
            if kind == "gap":
                modules.append(nn.AdaptiveAvgPool2d(1))
                shape = (shape[0], 1, 1)
            modules.append(nn.Flatten())
            shape = (int(torch.tensor(shape).prod()),)
        elif kind == "dense":
            _need(kind, args, 1, 1)
            if len(shape) != 1:
                raise ConfigError(f"model.layers: dense at position {position + 1} needs flatten (or gap) before it")
            modules.append(nn.Linear(shape[0], int(args[0])))
            shape = (int(args[0]),)
            if not last:
                modules.append(nn.ReLU())
        else:
            raise ConfigError(
                f"model.layers: unknown layer '{kind}'{did_you_mean(kind, LAYER_KINDS)}; known: {LAYER_HELP}"
            )
        if any(d < 1 for d in shape):
            raise ConfigError(
                f"model.layers: the image ({height}x{width}) shrinks to nothing at layer "
                f"{position + 1} ('{kind}'); use fewer or smaller layers or a larger images.size"
            )
    return nn.Sequential(*modules)


LAYER_KINDS = ("conv", "maxpool", "avgpool", "bn", "dropout", "relu", "flatten", "gap", "dense")


def _need(kind: str, args: list[float], low: int, high: int) -> None:
    if not low <= len(args) <= high or any(a <= 0 for a in args[:2]):
        raise ConfigError(
            f"model.layers: {kind} takes {low}{'' if low == high else f' to {high}'} positive "
            f"argument(s), got {args}; e.g. {LAYER_HELP}"
        )


# ---- registered models --------------------------------------------------------------------------------
@register_image_model("classic")
def build_classic(in_channels: int, height: int, width: int, classes: int, config: Any) -> nn.Module:
    """Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense(classes): the classic digit recognizer."""
    layers = [item.format(classes=classes) for item in CLASSIC_LAYERS]
    return build_layers(layers, in_channels, height, width, classes)


def _conv_bn(cin: int, cout: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class VggNet(nn.Module):
    """Blocks of two 3x3 conv + batch norm + ReLU and a 2x2 max-pool (channels doubling), then a dense head.

    Images of 24-32 px use unpadded convolutions and two blocks (the strong MNIST net); others padded
    convolutions, one block per halving down to about 4 px, and global average pooling."""

    def __init__(self, in_channels: int, height: int, width: int, classes: int, config: Any) -> None:
        super().__init__()
        w = config.width
        small = min(height, width) >= 24 and max(height, width) <= 32  # MNIST/CIFAR-sized: unpadded convs
        blocks = 2 if small else min(5, max(2, int(torch.tensor(min(height, width) / 4).log2())))
        layers: list[nn.Module] = []
        cin, h, wd = in_channels, height, width
        for b in range(blocks):
            cout = w * 2**b
            pad = 0 if small else 1
            layers += _conv_bn(cin, cout, pad) + _conv_bn(cout, cout, pad) + [nn.MaxPool2d(2)]
            if small:
                h, wd = (h - 4) // 2, (wd - 4) // 2
            else:
                h, wd = h // 2, wd // 2
            cin = cout
        self.features = nn.Sequential(*layers)
        if small:
            flat = cin * h * wd
            self.pool: nn.Module = nn.Flatten()
        else:
            flat = cin
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = 4 * w
        self.embed = nn.Sequential(
            nn.Linear(flat, self.out_features, bias=False),
            nn.BatchNorm1d(self.out_features),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
        )
        self.head = nn.Linear(self.out_features, classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.pool(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))


@register_image_model("cnn")
def build_cnn(in_channels: int, height: int, width: int, classes: int, config: Any) -> nn.Module:
    """The default: a VGG-style net with batch norm."""
    return VggNet(in_channels, height, width, classes, config)


class ImageTabularNet(nn.Module):
    """Image encoder + tabular encoder → concatenation → dense head (for tables with an image column)."""

    def __init__(self, image: VggNet, tabular: nn.Module, tabular_width: int, classes: int) -> None:
        super().__init__()
        self.image = image
        self.tabular = tabular
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(image.out_features + tabular_width, classes))

    def forward(self, x: torch.Tensor, *tabular: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image.encode(x), self.tabular(*tabular)], dim=1))


def build_image_model(spec: dict[str, Any], config: Any) -> nn.Module:
    """The net described by ``spec`` (channels, size, classes, model name or layers, tabular widths)."""
    args = (spec["channels"], spec["height"], spec["width"], spec["classes"])
    layers = spec.get("layers")
    model = build_layers(layers, *args) if layers else get_image_model(spec["name"])(*args, config)
    tab = spec.get("tabular")
    if tab:
        from deepmine.nn.tabular import TabularMLP

        if not isinstance(model, VggNet):
            raise ConfigError("image + tabular tables need model.name=cnn (the default), not a layer list or classic")
        width = 32
        encoder = TabularMLP(tab["numeric_widths"], tab["cardinalities"], tab["text_cardinalities"], width, config)
        model = ImageTabularNet(model, encoder, width, spec["classes"])
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
