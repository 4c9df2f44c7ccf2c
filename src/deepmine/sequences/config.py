"""Configs of sequence classification/regression and of forecasting (pydantic, ``--set key=value``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from deepmine.config import DataConfig, OptimizerConfig, TrackingConfig, TrainerConfig, _Section


class SequenceModelConfig(_Section):
    """The network: ``auto`` = an ensemble of ResNet-style 1-D CNNs (each member its own seed)."""

    name: Literal["auto", "resnet", "inception", "lstm", "gru"] = "auto"
    members: int = Field(3, ge=1, le=32, description="Networks trained apart with their own seeds, averaged.")
    filters: int = Field(32, ge=4, description="CNN: filters of the first block (ResNet) or per branch (Inception).")
    depth: int = Field(3, ge=1, le=12, description="CNN: residual blocks (ResNet) or inception modules.")
    hidden: int = Field(128, ge=2, description="LSTM/GRU hidden units.")
    layers: int = Field(1, ge=1, le=8, description="Stacked LSTM/GRU layers.")
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class SequencePrepConfig(_Section):
    """How rows become sequences."""

    label: str | int = Field(0, description="Wide rows: the label column (a name, or a position; 0 = first).")
    channels: int = Field(1, ge=1, description="Wide rows: values per step (a row holds steps × channels values).")
    normalize: Literal["series", "global", "none"] = Field(
        "series", description="z-normalize each series (per channel), or by training statistics, or not at all."
    )
    augment: bool | None = Field(None, description="Random scaling, jitter and shifts while training; auto = CNNs.")


class SequenceTrainerConfig(TrainerConfig):
    """The training loop, with defaults for small series sets: fixed epochs, cosine schedule, no hold-out."""

    epochs: int = Field(
        150, ge=1, description="150 beat 60 on validation carved from UCR SwedishLeaf train (two 80/20 splits)."
    )
    batch_size: int | Literal["full"] = 16
    schedule: Literal["none", "cosine", "onecycle", "plateau"] = "cosine"
    early_stopping: bool = Field(False, description="Hold out valid_fraction of the rows and stop on its loss.")
    valid_fraction: float = Field(0.2, gt=0, lt=0.9)
    checkpoint: bool = False
    threads: int | None = Field(1, ge=1, description="CPU threads for torch (these small nets run fastest on one).")


class SequenceOptimizerConfig(OptimizerConfig):
    """Optimizer and penalties."""

    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0, description="L2 penalty.")


class SequenceRunConfig(_Section):
    """Everything one sequence classification/regression run needs."""

    task: Literal["auto", "classification", "regression"] = "auto"
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    sequence: SequencePrepConfig = Field(default_factory=SequencePrepConfig)
    model: SequenceModelConfig = Field(default_factory=SequenceModelConfig)
    optimizer: SequenceOptimizerConfig = Field(default_factory=SequenceOptimizerConfig)
    trainer: SequenceTrainerConfig = Field(default_factory=SequenceTrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


class ForecastModelConfig(_Section):
    """``auto`` trains DLinear and PatchTST and keeps the best of them and their mean on validation."""

    name: Literal["auto", "dlinear", "rnn", "patchtst"] = "auto"
    revin: bool | None = Field(None, description="Per-window instance normalization; auto = on except DLinear.")
    kernel: int = Field(25, ge=3, description="DLinear: moving-average window of the trend.")
    hidden: int = Field(64, ge=2, description="rnn: hidden units.")
    cell: Literal["lstm", "gru"] = "lstm"
    patch: int = Field(16, ge=2)
    stride: int = Field(8, ge=1)
    d_model: int = Field(64, ge=8)
    heads: int = Field(4, ge=1)
    layers: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


class ForecastTrainerConfig(TrainerConfig):
    """The training loop, with the defaults of the DLinear/PatchTST recipes."""

    epochs: int = Field(10, ge=1)
    batch_size: int | Literal["full"] = 32
    schedule: Literal["none", "cosine", "onecycle", "plateau"] = "cosine"
    patience: int = Field(3, ge=1)
    checkpoint: bool = False
    threads: int | None = Field(1, ge=1, description="CPU threads for torch (these small nets run fastest on one).")


class ForecastOptimizerConfig(OptimizerConfig):
    """Optimizer and penalties."""

    name: Literal["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"] = "adam"
    lr: float = Field(5e-3, gt=0, description="DLinear's rate; the transformer and RNN use a fifth of it.")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty.")


class ForecastRunConfig(_Section):
    """Everything one forecasting run needs."""

    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    time: str | None = Field(None, description="The time column.")
    targets: list[str] = Field(default_factory=list, description="Columns to forecast; empty = every numeric one.")
    horizon: int = Field(96, ge=1)
    lookback: int = Field(96, ge=2)
    split: list[float] = Field(
        default_factory=lambda: [0.7, 0.1, 0.2],
        description="train/validation/test: row counts (8640,2880,2880) or fractions (0.7,0.1,0.2).",
    )
    freq: str | None = Field(None, description="Resample to this pandas frequency; auto = the median time step.")
    quantiles: list[float] = Field(default_factory=list, description="Also forecast these quantiles (0.1, 0.9).")
    model: ForecastModelConfig = Field(default_factory=ForecastModelConfig)
    optimizer: ForecastOptimizerConfig = Field(default_factory=ForecastOptimizerConfig)
    trainer: ForecastTrainerConfig = Field(default_factory=ForecastTrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
