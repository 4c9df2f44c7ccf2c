"""Image run configuration: one pydantic model, YAML in, ``--set key=value`` overrides (like tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from deepmine.config import (
    ColumnsConfig,
    DataConfig,
    OptimizerConfig,
    PreprocessConfig,
    TrackingConfig,
    TrainerConfig,
    _Section,
    build_config,
)


class ImageConfig(_Section):
    """How images are read, resized, normalized and augmented."""

    path_column: str | None = Field(None, description="Table column holding image paths; detected when unset.")
    size: int | list[int] | None = Field(
        None,
        description="Height and width fed to the net; the most common size "
        "(longest side capped at max_size) when unset.",
    )
    max_size: int = Field(128, ge=8, description="Cap on the automatic size's longest side.")
    channels: Literal["auto", "gray", "rgb"] = Field("auto", description="auto = the majority of the images.")
    resize: Literal["pad", "crop"] = Field("pad", description="Keep the aspect and pad, or center-crop.")
    augment: bool = Field(True, description="Random shifts (and flips/rotations as set) while training.")
    shift: int | None = Field(None, ge=0, description="Largest random shift in pixels; auto = size/14.")
    flip: Literal["auto", "none", "horizontal"] = Field(
        "auto", description="auto = horizontal flips for colour photos, none for grayscale (digits, documents)."
    )
    rotate: float = Field(0.0, ge=0, le=45, description="Largest random rotation in degrees (0 = off).")
    cache: bool = Field(False, description="Decode folders once into an on-disk cache of resized images.")
    workers: int = Field(0, ge=0, description="DataLoader worker processes that decode image files.")
    strict: bool = Field(False, description="Stop at the first unreadable image instead of skipping it.")


class ImageModelConfig(_Section):
    """The network. ``layers`` (e.g. ``[conv(32,3), maxpool(2), flatten, dense(10)]``) builds one exactly."""

    name: Literal["auto", "cnn", "classic"] = Field("auto", description="auto = cnn (VGG-style with batch norm).")
    layers: list[str] | str | None = Field(None, description="Explicit layer list; overrides name.")
    width: int = Field(
        16,
        ge=4,
        description="Channels of the first cnn block (doubles per block); 16 suits a 2-core CPU.",
    )
    dropout: float = Field(0.25, ge=0.0, lt=1.0)
    channels_last: bool = Field(True, description="NHWC memory format (faster convolutions on CPU).")
    # the tabular encoder for image + tabular tables
    hidden: list[int] = Field(default_factory=lambda: [64])
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"
    batch_norm: bool = False
    embedding_dim: int | None = Field(None, ge=1)
    ensemble: int = Field(1, ge=1, le=1)
    numeric_embedding: int = Field(8, ge=0)


class ImageOptimizerConfig(OptimizerConfig):
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0, description="L2 penalty (decoupled for adamw).")


class ImageTrainerConfig(TrainerConfig):
    epochs: int = Field(15, ge=1)
    batch_size: int | Literal["full"] = 128
    schedule: Literal["none", "cosine", "onecycle", "plateau"] = "onecycle"
    patience: int = Field(5, ge=1)
    valid_fraction: float = Field(0.1, gt=0, lt=0.9)
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class ImageRunConfig(_Section):
    """Everything one image run needs. Every field can be set with ``--set section.key=value``."""

    task: Literal["auto", "multiclass", "binary"] = "auto"
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    images: ImageConfig = Field(default_factory=ImageConfig)
    model: ImageModelConfig = Field(default_factory=ImageModelConfig)
    optimizer: ImageOptimizerConfig = Field(default_factory=ImageOptimizerConfig)
    trainer: ImageTrainerConfig = Field(default_factory=ImageTrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


ALIASES = {
    "trainer.lr": "optimizer.lr",
    "trainer.optimizer": "optimizer.name",
    "trainer.weight_decay": "optimizer.weight_decay",
    "image.size": "images.size",
}


def build_image_config(base: Any = None, overrides: dict[str, Any] | None = None) -> ImageRunConfig:
    """Merge a base config (object, dict or YAML path) with dotted overrides; unknown keys get a suggestion."""
    if isinstance(base, str):
        base = Path(base)
    return build_config(base, overrides, schema=ImageRunConfig, aliases=ALIASES, command="fit")
