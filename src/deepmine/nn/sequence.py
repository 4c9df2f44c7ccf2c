"""Sequence classifiers over ``(batch, steps, channels)`` with optional per-row ``lengths`` (masking).

- ``lstm`` / ``gru``: uni- or bidirectional, stacked; padded steps are skipped with packed sequences and the
  final state of each direction is classified (the classic "MNIST rows" LSTM is ``lstm`` on 28 steps × 28).
- ``resnet``: 1-D CNN with residual blocks of kernels 8/5/3 (Wang et al. 2017; Fawaz et al. 2019).
- ``inception``: InceptionTime modules (bottleneck, three kernel sizes, max-pool branch) with shortcuts every
  three modules (Fawaz et al. 2020).
CNNs average over the valid (unpadded) steps only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from deepmine.exceptions import ConfigError

SEQUENCE_MODELS = ("resnet", "inception", "lstm", "gru")


def step_mask(lengths: torch.Tensor | None, batch: int, steps: int) -> torch.Tensor | None:
    """``(batch, steps)`` float mask of valid steps, or None when every row is full length."""
    if lengths is None:
        return None
    return (torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)).float()


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over steps of ``h`` (batch, features, steps), counting valid steps only."""
    if mask is None:
        return h.mean(dim=2)
    weights = mask.unsqueeze(1)
    return (h * weights).sum(dim=2) / weights.sum(dim=2).clamp_min(1.0)


class RNNClassifier(nn.Module):
    """LSTM/GRU over the steps; the last valid state of each direction feeds a linear head."""

    def __init__(
        self,
        channels: int,
        classes: int,
        cell: str = "lstm",
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.cell = cell
        self.rnn = rnn(
            channels,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), classes)
        self.directions = 2 if bidirectional else 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is not None and bool((lengths < x.shape[1]).any()):
            packed = pack_padded_sequence(x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
            _, state = self.rnn(packed)
        else:
            _, state = self.rnn(x)
        h = state[0] if self.cell == "lstm" else state
        last = h[-self.directions :].transpose(0, 1).reshape(len(x), -1)
        return self.head(self.dropout(last))


class ResidualBlock(nn.Module):
    """Three convolutions (kernels 8, 5, 3) with batch norm, plus a 1×1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, k in enumerate((8, 5, 3)):
            layers += [nn.Conv1d(c_in if i == 0 else c_out, c_out, k, padding="same"), nn.BatchNorm1d(c_out)]
            if i < 2:
                layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class InceptionModule(nn.Module):
    """Bottleneck, three parallel convolutions and a max-pool branch, concatenated."""

    def __init__(self, c_in: int, filters: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.bottleneck = nn.Conv1d(c_in, filters, 1, bias=False) if c_in > 1 else nn.Identity()
        width = filters if c_in > 1 else c_in
        self.convs = nn.ModuleList(nn.Conv1d(width, filters, k, padding="same", bias=False) for k in kernels)
        self.pool = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(c_in, filters, 1, bias=False))
        self.norm = nn.BatchNorm1d(filters * (len(kernels) + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        out = torch.cat([conv(z) for conv in self.convs] + [self.pool(x)], dim=1)
        return torch.relu(self.norm(out))


class ConvClassifier(nn.Module):
    """ResNet- or Inception-style 1-D CNN, masked global average pooling, linear head."""

    def __init__(self, channels: int, classes: int, kind: str = "resnet", filters: int = 32, depth: int = 3) -> None:
        super().__init__()
        self.kind = kind
        blocks: list[nn.Module] = []
        shortcuts: list[nn.Module] = []
        if kind == "resnet":
            widths = [filters] + [2 * filters] * (depth - 1)
            c_in = channels
            for width in widths:
                blocks.append(ResidualBlock(c_in, width))
                c_in = width
            out = c_in
        else:
            kernels = (39, 19, 9)
            c_in = channels
            width = filters * 4
            for i in range(depth):
                blocks.append(InceptionModule(c_in, filters, kernels))
                c_in = width
                if i % 3 == 2:
                    shortcuts.append(
                        nn.Sequential(nn.Conv1d(channels if i == 2 else width, width, 1), nn.BatchNorm1d(width))
                    )
            out = width
        self.blocks = nn.ModuleList(blocks)
        self.shortcuts = nn.ModuleList(shortcuts)
        self.head = nn.Linear(out, classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = step_mask(lengths, x.shape[0], x.shape[1])
        h = x.transpose(1, 2)
        if mask is not None:
            h = h * mask.unsqueeze(1)
        if self.kind == "resnet":
            for block in self.blocks:
                h = block(h)
        else:
            residual = h
            for i, block in enumerate(self.blocks):
                h = block(h)
                if i % 3 == 2:
                    h = torch.relu(h + self.shortcuts[i // 3](residual))
                    residual = h
        return self.head(masked_mean(h, mask))


class SequenceEnsemble(nn.Module):
    """Members trained apart, averaged as log of the mean probability (so argmax and softmax still work)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if len(self.members) == 1:
            return self.members[0](x, lengths)
        probs = torch.stack([torch.softmax(m(x, lengths), dim=1) for m in self.members]).mean(0)
        return torch.log(probs.clamp_min(1e-12))


def build_member(spec: dict[str, Any]) -> nn.Module:
    """One network from a JSON spec (``name``, ``channels``, ``classes`` and the model's settings)."""
    name, channels, classes = spec["name"], spec["channels"], spec["classes"]
    if name in ("lstm", "gru"):
        return RNNClassifier(
            channels,
            classes,
            cell=name,
            hidden=spec.get("hidden", 128),
            layers=spec.get("layers", 1),
            bidirectional=spec.get("bidirectional", False),
            dropout=spec.get("dropout", 0.0),
        )
    if name in ("resnet", "inception"):
        return ConvClassifier(channels, classes, name, filters=spec.get("filters", 32), depth=spec.get("depth", 3))
    raise ConfigError(f"unknown sequence model '{name}'; choose one of {', '.join(SEQUENCE_MODELS)}")


def build_sequence_model(spec: dict[str, Any]) -> SequenceEnsemble:
    """``spec['members']`` networks (named by ``spec['names']``, each as :func:`build_member`), averaged."""
    names = spec.get("names") or [spec["name"]] * spec.get("members", 1)
    return SequenceEnsemble([build_member({**spec, "name": name}) for name in names])
