"""Forecasting networks: direct multi-horizon models mapping ``(batch, lookback, channels)`` to
``(batch, horizon, channels)``.

- ``dlinear``: series decomposition (moving-average trend + remainder), one linear map per part
  (Zeng et al. 2023, "Are Transformers Effective for Time Series Forecasting?").
- ``rnn``: an LSTM/GRU encoder-decoder; the decoder runs ``horizon`` steps from the encoder state with a
  learned embedding per step, each output read by a linear head.
- ``patchtst``: channel-independent patches fed to a transformer encoder, flattened to the horizon
  (Nie et al. 2023, PatchTST).

Every model wraps its core in per-window instance normalization (RevIN, Kim et al. 2022): each window is
standardized by its own mean and deviation, and the forecast is mapped back.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepmine.exceptions import ConfigError

FORECAST_MODELS = ("dlinear", "rnn", "patchtst")


class RevIN(nn.Module):
    """Per-window instance normalization with a learnable per-channel affine map."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - mean) / std * self.weight + self.bias, mean, std

    def denormalize(self, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return (y - self.bias) / (self.weight + self.eps * self.eps) * std + mean


class MovingAverage(nn.Module):
    """Trend by a centered moving average, the ends padded by repetition."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.pool = nn.AvgPool1d(kernel, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, steps, channels)
        front = x[:, :1].repeat(1, (self.kernel - 1) // 2, 1)
        back = x[:, -1:].repeat(1, self.kernel // 2, 1)
        padded = torch.cat([front, x, back], dim=1)
        return self.pool(padded.transpose(1, 2)).transpose(1, 2)


class DLinear(nn.Module):
    """Trend and remainder, each mapped lookback → horizon by a linear layer shared across channels."""

    def __init__(self, lookback: int, horizon: int, channels: int, kernel: int = 25) -> None:
        super().__init__()
        self.decompose = MovingAverage(kernel)
        self.trend = nn.Linear(lookback, horizon)
        self.season = nn.Linear(lookback, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trend = self.decompose(x)
        season = x - trend
        out = self.trend(trend.transpose(1, 2)) + self.season(season.transpose(1, 2))
        return out.transpose(1, 2)


class RNNForecaster(nn.Module):
    """LSTM/GRU encoder-decoder for direct multi-horizon forecasts."""

    def __init__(self, lookback: int, horizon: int, channels: int, hidden: int = 64, cell: str = "lstm") -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.horizon = horizon
        self.encoder = rnn(channels, hidden, batch_first=True)
        self.decoder = rnn(hidden, hidden, batch_first=True)
        self.steps = nn.Parameter(torch.randn(horizon, hidden) * 0.02)
        self.head = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.encoder(x)
        queries = self.steps.unsqueeze(0).expand(len(x), -1, -1)
        out, _ = self.decoder(queries, state)
        return self.head(out)


class PatchTST(nn.Module):
    """Channel-independent patch transformer: patches of each channel → encoder → flattened linear head."""

    def __init__(
        self,
        lookback: int,
        horizon: int,
        channels: int,
        patch: int = 16,
        stride: int = 8,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.patch, self.stride = patch, stride
        self.patches = (lookback - patch) // stride + 2  # one extra patch from end padding, as in PatchTST
        self.embed = nn.Linear(patch, d_model)
        self.position = nn.Parameter(torch.randn(self.patches, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.patches * d_model, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, channels = x.shape
        series = x.transpose(1, 2).reshape(batch * channels, -1)
        series = torch.cat([series, series[:, -1:].expand(-1, self.stride)], dim=1)
        patches = series.unfold(1, self.patch, self.stride)  # (batch*channels, patches, patch)
        tokens = self.dropout(self.embed(patches) + self.position)
        encoded = self.encoder(tokens).flatten(1)
        out = self.head(encoded).reshape(batch, channels, -1)
        return out.transpose(1, 2)


class Forecaster(nn.Module):
    """A core forecasting network inside per-window instance normalization."""

    def __init__(self, core: nn.Module, channels: int, revin: bool = True) -> None:
        super().__init__()
        self.revin = RevIN(channels) if revin else None
        self.core = core

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.revin is None:
            return self.core(x)
        z, mean, std = self.revin.normalize(x)
        return self.revin.denormalize(self.core(z), mean, std)


def build_forecaster(spec: dict[str, Any]) -> Forecaster:
    """Build from a JSON spec: ``name``, ``lookback``, ``horizon``, ``channels`` and the model's settings."""
    name, lookback, horizon, channels = spec["name"], spec["lookback"], spec["horizon"], spec["channels"]
    if name == "dlinear":
        core: nn.Module = DLinear(lookback, horizon, channels, kernel=spec.get("kernel", 25))
    elif name == "rnn":
        core = RNNForecaster(lookback, horizon, channels, hidden=spec.get("hidden", 64), cell=spec.get("cell", "lstm"))
    elif name == "patchtst":
        patch = min(spec.get("patch", 16), lookback)
        core = PatchTST(
            lookback,
            horizon,
            channels,
            patch=patch,
            stride=max(1, min(spec.get("stride", 8), patch)),
            d_model=spec.get("d_model", 64),
            heads=spec.get("heads", 4),
            layers=spec.get("layers", 2),
            dropout=spec.get("dropout", 0.2),
        )
    else:
        raise ConfigError(f"unknown forecasting model '{name}'; choose one of {', '.join(FORECAST_MODELS)} or auto")
    return Forecaster(core, channels, revin=spec.get("revin", True))
