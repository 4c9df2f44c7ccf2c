"""The tabular MLP: scaled numerics + learned categorical embeddings + one configured encoder per text column."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepmine.config import ModelConfig, TextConfig
from deepmine.nn.registry import register_model
from deepmine.text.encoders import build_text_encoder

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


WIDE_TABLE_COLUMNS = 64


def numeric_embedding_size(configured: int | None, columns: int) -> int:
    """The per-column numeric embedding size: as configured, else 16 — or 0 (raw features) for tables with
    more than WIDE_TABLE_COLUMNS numeric columns, where the block-diagonal product costs columns² and the
    extra parameters overfit (arrhythmia: 274 columns, 316 rows)."""
    if configured is not None:
        return configured
    return 16 if columns <= WIDE_TABLE_COLUMNS else 0


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
    """Encoders per column kind → concatenation → MLP → task head; text encoders with a wide part (the n-gram
    encoder) add their scores to the head's output."""

    def __init__(
        self,
        numeric_widths: list[int],
        cardinalities: list[int],
        text_cardinalities: list[int],
        out_features: int,
        config: ModelConfig,
        text_specs: list[dict[str, int]] | None = None,
        text: dict[str, Any] | None = None,
        text_encoder: str | None = None,
    ) -> None:
        super().__init__()

        dim = numeric_embedding_size(config.numeric_embedding, len(numeric_widths))
        self.numeric = NumericEmbeddings(numeric_widths, dim) if dim and numeric_widths else None
        numeric_width = self.numeric.out_features if self.numeric is not None else sum(numeric_widths)
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, embedding_size(card, config.embedding_dim)) for card in cardinalities
        )
        text_config = TextConfig.model_validate(text or {})
        specs = text_specs or [{} for _ in text_cardinalities]
        self.texts = nn.ModuleList(
            build_text_encoder(
                text_encoder or text_config.encoders[0], card, text_config, out_features=out_features, **spec
            )
            for card, spec in zip(text_cardinalities, specs, strict=True)
        )
        width = numeric_width + sum(e.embedding_dim for e in self.embeddings) + sum(t.out_features for t in self.texts)
        # identity layers the wide scores pass through, so explanations can attribute them to their column
        self.wides = nn.ModuleList(nn.Identity() for _ in self.texts)
        self.body = mlp_layers(width, config.hidden, config.activation, config.dropout, config.batch_norm)
        self.head = nn.Linear(config.hidden[-1] if config.hidden else width, out_features)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor, *texts: torch.Tensor) -> torch.Tensor:
        parts = [self.numeric(numeric) if self.numeric is not None else numeric]
        parts.extend(emb(categorical[:, i]) for i, emb in enumerate(self.embeddings))
        parts.extend(encoder(ids) for encoder, ids in zip(self.texts, texts, strict=True))
        out = self.head(self.body(torch.cat(parts, dim=1)))
        for encoder, gate, ids in zip(self.texts, self.wides, texts, strict=True):
            if encoder.has_wide:
                out = out + gate(encoder.wide(ids))
        return out


@register_model("mlp")
def build_mlp(
    numeric_widths: list[int],
    cardinalities: list[int],
    text_cardinalities: list[int],
    out_features: int,
    config: ModelConfig,
    text_specs: list[dict[str, int]] | None = None,
    text: dict[str, Any] | None = None,
    text_encoder: str | None = None,
) -> TabularMLP:
    """The default tabular model (``text_encoder``: this member's text encoder, else ``text.encoder``)."""
    return TabularMLP(
        numeric_widths, cardinalities, text_cardinalities, out_features, config, text_specs, text, text_encoder
    )
