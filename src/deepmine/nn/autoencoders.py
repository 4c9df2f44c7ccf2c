"""Autoencoders for unsupervised mining: dense (tables), convolutional (images), LSTM (sequences).

Each has ``encode(x)`` (the embedding) and ``forward(x)`` (the reconstruction), so the Trainer fits them
with inputs ``[x]`` and target ``x`` under :class:`ReconstructionLoss`.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


def _mlp(sizes: list[int], activation: str, dropout: float, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class DenseAutoencoder(nn.Module):
    """``in → hidden… → latent → …hidden → in``; the decoder mirrors the encoder."""

    def __init__(
        self,
        in_features: int,
        hidden: list[int],
        latent: int,
        activation: str = "relu",
        dropout: float = 0.0,
        latent_activation: bool = False,
    ) -> None:
        super().__init__()
        sizes = [in_features, *hidden, latent]
        self.encoder = _mlp(sizes, activation, dropout, last_activation=latent_activation)
        self.decoder = _mlp(sizes[::-1], activation, dropout, last_activation=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ConvAutoencoder(nn.Module):
    """Images ``(n, c, h, w)`` with h, w divisible by 4: two stride-2 convolutions → dense latent, mirrored."""

    def __init__(self, channels: int, height: int, width: int, latent: int = 10, filters: int = 32) -> None:
        super().__init__()
        if height % 4 or width % 4:
            raise ValueError(f"ConvAutoencoder needs sides divisible by 4, got {height}×{width}")
        self.shape = (filters * 2, height // 4, width // 4)
        flat = filters * 2 * (height // 4) * (width // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, filters, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(filters, filters * 2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, latent),
        )
        self.expand = nn.Sequential(nn.Linear(latent, flat), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(filters * 2, filters, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(filters, channels, 3, stride=2, padding=1, output_padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.expand(self.encoder(x)).view(-1, *self.shape))


class LSTMAutoencoder(nn.Module):
    """Sequences ``(n, steps, features)``: an LSTM encodes to its last hidden state, a second LSTM
    unrolls that state over the steps and a linear layer maps back to the features."""

    def __init__(self, features: int, hidden: int = 32, latent: int = 8) -> None:
        super().__init__()
        self.encoder = nn.LSTM(features, hidden, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.decoder = nn.LSTM(latent, hidden, batch_first=True)
        self.output = nn.Linear(hidden, features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(x)
        return self.to_latent(h[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encode(x)
        repeated = z.unsqueeze(1).expand(-1, x.shape[1], -1)
        out, _ = self.decoder(repeated)
        return self.output(out)


class ReconstructionLoss(nn.Module):
    """Mean squared reconstruction error (the target is the input)."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output, target)


def encode_in_chunks(model: nn.Module, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """``model.encode`` over every row, without gradients."""
    model.eval()
    with torch.inference_mode():
        parts = [model.encode(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return torch.cat(parts) if parts else torch.zeros((0, 1))


def reconstruct_in_chunks(model: nn.Module, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """``model(x)`` over every row, without gradients."""
    model.eval()
    with torch.inference_mode():
        parts = [model(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return torch.cat(parts) if parts else torch.zeros_like(x)
