"""The tabular MLP: scaled numerics + learned categorical embeddings + mean-pooled text embeddings."""

from __future__ import annotations

import torch
from torch import nn

from deepmine.config import ModelConfig
from deepmine.nn.registry import register_model

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def embedding_size(cardinality: int, fixed: int | None = None) -> int:
    """fast.ai's rule of thumb, capped: 1.6 * n^0.56, at most 32."""
    if fixed:
        return fixed
    return int(min(32, max(2, round(1.6 * cardinality**0.56))))


def mlp_layers(width: int, hidden: list[int], activation: str, dropout: float, batch_norm: bool) -> nn.Sequential:
    """Linear → [BatchNorm] → activation → [Dropout] for each hidden size."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    return nn.Sequential(*layers)


class TextBag(nn.Module):
    """Mean of the word embeddings of a padded id row (0 = padding)."""

    def __init__(self, cardinality: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(cardinality, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids > 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        summed = (self.embedding(ids) * mask).sum(1)
        return summed / mask.sum(1).clamp(min=1.0)


class NumericEmbeddings(nn.Module):
    """Each numeric column's own features (scaled value, missing flag, piecewise-linear bins) →
    Linear → ReLU, one small embedding per column (the "PLE + LR" of Gorishniy et al., 2022).
    Computed as one block-diagonal matrix product."""

    def __init__(self, widths: list[int], dim: int) -> None:
        super().__init__()
        total, columns = sum(widths), len(widths)
        self.weight = nn.Parameter(torch.zeros(total, columns * dim))
        self.bias = nn.Parameter(torch.zeros(columns * dim))
        mask = torch.zeros(total, columns * dim)
        offset = 0
        with torch.no_grad():
            for i, width in enumerate(widths):
                block = (slice(offset, offset + width), slice(i * dim, (i + 1) * dim))
                mask[block] = 1.0
                bound = width**-0.5
                self.weight[block].uniform_(-bound, bound)
                self.bias[i * dim : (i + 1) * dim].uniform_(-bound, bound)
                offset += width
        self.register_buffer("mask", mask, persistent=False)
        self.out_features = columns * dim

    def forward(self, numeric: torch.Tensor) -> torch.Tensor:
        return torch.relu(numeric @ (self.weight * self.mask) + self.bias)


class TabularMLP(nn.Module):
    """Encoders per column kind → concatenation → MLP → task head."""

    def __init__(
        self,
        numeric_widths: list[int],
        cardinalities: list[int],
        text_cardinalities: list[int],
        out_features: int,
        config: ModelConfig,
    ) -> None:
        super().__init__()
        dim = config.numeric_embedding
        self.numeric = NumericEmbeddings(numeric_widths, dim) if dim and numeric_widths else None
        numeric_width = self.numeric.out_features if self.numeric is not None else sum(numeric_widths)
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, embedding_size(card, config.embedding_dim)) for card in cardinalities
        )
        self.texts = nn.ModuleList(TextBag(card, config.embedding_dim or 32) for card in text_cardinalities)
        width = (
            numeric_width
            + sum(e.embedding_dim for e in self.embeddings)
            + sum(t.embedding.embedding_dim for t in self.texts)
        )
        self.body = mlp_layers(width, config.hidden, config.activation, config.dropout, config.batch_norm)
        self.head = nn.Linear(config.hidden[-1] if config.hidden else width, out_features)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor, *texts: torch.Tensor) -> torch.Tensor:
        parts = [self.numeric(numeric) if self.numeric is not None else numeric]
        parts.extend(emb(categorical[:, i]) for i, emb in enumerate(self.embeddings))
        parts.extend(bag(ids) for bag, ids in zip(self.texts, texts, strict=True))
        return self.head(self.body(torch.cat(parts, dim=1)))


@register_model("mlp")
def build_mlp(
    numeric_widths: list[int],
    cardinalities: list[int],
    text_cardinalities: list[int],
    out_features: int,
    config: ModelConfig,
) -> TabularMLP:
    """The default tabular model."""
    return TabularMLP(numeric_widths, cardinalities, text_cardinalities, out_features, config)
