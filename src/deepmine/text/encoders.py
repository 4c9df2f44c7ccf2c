"""Text encoders by name: padded id rows (0 = padding) → one feature vector per row.

``bag`` mean of word embeddings; ``ngram`` the bag plus a wide Naive-Bayes-weighted bag of word 1..n-grams whose
class scores go straight to the output (NBSVM as a network, Wang & Manning 2012); ``nbsvm`` / ``tfidf`` linear
models over the same n-grams, solved before training and frozen (ensemble members); ``lstm`` / ``gru`` with
packed sequences; ``cnn`` with several kernel widths; ``transformer`` a small encoder with a padding mask.
Recurrent, convolutional and transformer encoders pool over positions: last, mean, max or attention.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deepmine.exceptions import ConfigError, did_you_mean
from deepmine.text.linear import normalised, present_rows
from deepmine.text.ngrams import NgramTable, row_folds, table_rows

if TYPE_CHECKING:
    from deepmine.config import TextConfig

NEG = -1e4


class Pooling(nn.Module):
    """Masked pooling of (rows, positions, width) states: mean, max, attention or last (the last real token)."""

    def __init__(self, kind: str, width: int) -> None:
        super().__init__()
        self.kind = kind
        self.score = nn.Linear(width, 1) if kind == "attention" else None

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(states.dtype)
        if self.kind == "mean":
            return (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        if self.kind == "max":
            pooled = states.masked_fill(~mask.unsqueeze(-1), NEG).max(1).values
            return torch.where(mask.any(1, keepdim=True), pooled, torch.zeros_like(pooled))
        if self.kind == "attention":
            weights = torch.softmax(self.score(states).squeeze(-1).masked_fill(~mask, NEG), dim=1)
            return (states * (weights.unsqueeze(-1) * m)).sum(1)
        last = (mask.sum(1) - 1).clamp(min=0)
        return states[torch.arange(len(states)), last] * mask.any(1, keepdim=True).to(states.dtype)


class TextModule(nn.Module):
    """Shared parts: the word embedding (id 0 = padding) and an optional wide output."""

    out_features: int
    has_wide = False

    def __init__(self, cardinality: int, config: TextConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(cardinality, config.embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)

    def wide(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Scores added to the model's output (only the n-gram encoder has them)."""
        return None

    def install(self, table: NgramTable | None) -> None:
        """Take what was learnt from the training texts (the n-gram encoder's table)."""


class BagEncoder(TextModule):
    """Mean of the word embeddings (padding excluded; 0 for an empty text). One ``embedding_bag`` call: the
    (rows, positions, width) embeddings are never materialised, about 3× faster forward and backward than
    embedding + masked mean, same values."""

    def __init__(self, cardinality: int, config: TextConfig) -> None:
        super().__init__(cardinality, config)
        self.out_features = config.embedding_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.embedding_bag(ids, self.embedding.weight, mode="mean", padding_idx=0)
        return self.dropout(pooled)


class NgramEncoder(BagEncoder):
    """The bag of words for the deep part, and a wide bag of 1..``ngrams``-grams (each counted once per text):
    score_c = Σ_g (w_g + β) · r_gc / κ with r the Naive-Bayes log-count ratios of class c (frozen; learnt from
    zero for regression) and w a learnt per-n-gram weight (J. Howard's "NBSVM++"). w is stored divided by
    ``SCALE`` so that Adam, whose steps are about ``lr`` whatever the gradient, moves it ``SCALE`` times faster
    than the deep part: the sparse, linear wide part needs a far larger step than the network. While training, a
    row's ratios come from the other ``text.ngram_folds`` folds only (cross-fitted; the fold is a function of the
    row's ids), so the wide part cannot fit the training labels through ratios counted on those same rows; the
    ratios of all training rows score everything else. The fold ratios are not saved."""

    BETA, KAPPA, SCALE = 0.4, 10.0, 30.0
    has_wide = True

    def __init__(self, cardinality: int, config: TextConfig, ngram_rows: int = 0, out_features: int = 1) -> None:
        super().__init__(cardinality, config)
        self.cardinality, self.orders = cardinality, config.ngrams
        self.register_buffer("table", torch.zeros(max(ngram_rows - 1, 0), dtype=torch.int64))
        self.weight = nn.Embedding(max(ngram_rows, 1), 1, padding_idx=0)
        self.ratios = nn.Embedding(max(ngram_rows, 1), out_features, padding_idx=0)
        nn.init.uniform_(self.weight.weight, -0.1 / self.SCALE, 0.1 / self.SCALE)
        nn.init.zeros_(self.ratios.weight)
        self.register_buffer("fold_ratios", torch.zeros(0), persistent=False)
        with torch.no_grad():
            self.weight.weight[0] = 0.0

    def install(self, table: NgramTable | None) -> None:
        if table is None:
            return
        with torch.no_grad():
            self.table.copy_(torch.from_numpy(table.keys))
            if table.ratios is not None:
                self.ratios.weight.copy_(torch.from_numpy(table.ratios))
            if table.fold_ratios is not None:
                self.fold_ratios = torch.from_numpy(table.fold_ratios)
        self.ratios.weight.requires_grad_(table.ratios is None)

    def wide(self, ids: torch.Tensor) -> torch.Tensor:
        rows = table_rows(self.table, ids, self.cardinality, self.orders)
        present = (rows > 0).unsqueeze(-1).to(self.ratios.weight.dtype)
        if self.training and len(self.fold_ratios):
            ratios = self.fold_ratios[row_folds(ids, len(self.fold_ratios)).unsqueeze(1), rows]
        else:
            ratios = self.ratios(rows)
        scaled = (self.weight(rows) * self.SCALE + self.BETA) * ratios * present
        return scaled.sum(1) / self.KAPPA


class LinearNgramEncoder(nn.Module):
    """A linear model over the n-gram table, solved before training (``nbsvm`` / ``tfidf``, see
    :mod:`deepmine.text.linear`) and frozen: its scores go straight to the output. It gives the member's network
    one constant zero feature, so a text-only member still has a well-formed (bias-only) network."""

    has_wide = True
    out_features = 1

    def __init__(
        self, kind: str, cardinality: int, config: TextConfig, ngram_rows: int = 0, out_features: int = 1
    ) -> None:
        super().__init__()
        self.kind, self.cardinality, self.orders = kind, cardinality, config.ngrams
        rows = max(ngram_rows, 1)
        self.register_buffer("table", torch.zeros(max(ngram_rows - 1, 0), dtype=torch.int64))
        self.register_buffer("scale", torch.zeros(rows))
        self.register_buffer("coefficients", torch.zeros(rows, out_features))
        self.register_buffer("bias", torch.zeros(out_features))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.new_zeros((len(ids), 1), dtype=self.scale.dtype)

    def install(self, table: NgramTable | None) -> None:
        fit = None if table is None else table.linear.get(self.kind)
        if fit is None:
            return
        with torch.no_grad():
            self.table.copy_(torch.from_numpy(table.keys))
            self.scale.copy_(torch.from_numpy(fit.scale))
            self.coefficients.copy_(torch.from_numpy(fit.weight * fit.multiplier))
            self.bias.copy_(torch.from_numpy(fit.bias))

    def wide(self, ids: torch.Tensor) -> torch.Tensor:
        rows = present_rows(self.table, ids, self.cardinality, self.orders)
        values = normalised(rows, self.scale).unsqueeze(-1)
        return (values * self.coefficients[rows]).sum(1) + self.bias


class RecurrentEncoder(TextModule):
    """Embedding → (Bi)LSTM/GRU over the real tokens only (packed) → pooling."""

    def __init__(self, cardinality: int, config: TextConfig, cell: str) -> None:
        super().__init__(cardinality, config)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(
            config.embedding_dim,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.pooling = config.pooling if config.pooling != "auto" else "last"
        width = config.hidden * (2 if config.bidirectional else 1)
        self.pool = Pooling(self.pooling, width)
        self.out_features = width

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids > 0
        lengths = mask.sum(1).clamp(min=1)
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, hidden = self.rnn(packed)
        if self.pooling == "last":
            h = hidden[0] if isinstance(hidden, tuple) else hidden
            last = torch.cat([h[-2], h[-1]], dim=1) if self.rnn.bidirectional else h[-1]
            return self.dropout(last * mask.any(1, keepdim=True).to(last.dtype))
        states, _ = pad_packed_sequence(output, batch_first=True, total_length=ids.shape[1])
        return self.dropout(self.pool(states, mask))


class ConvEncoder(TextModule):
    """Embedding → one Conv1d + ReLU per kernel width → pooling (max by default) → concatenation (Kim 2014)."""

    def __init__(self, cardinality: int, config: TextConfig) -> None:
        super().__init__(cardinality, config)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_dim, config.hidden, k, padding=k // 2) for k in config.kernel_sizes
        )
        self.pool = Pooling(config.pooling if config.pooling != "auto" else "max", config.hidden)
        self.out_features = config.hidden * len(config.kernel_sizes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids > 0
        x = self.embedding(ids).transpose(1, 2)
        parts = [self.pool(torch.relu(conv(x))[:, :, : ids.shape[1]].transpose(1, 2), mask) for conv in self.convs]
        return self.dropout(torch.cat(parts, dim=1))


class TransformerTextEncoder(TextModule):
    """Embedding + learnt positions → a small pre-norm transformer encoder with a padding mask → pooling."""

    def __init__(self, cardinality: int, config: TextConfig, max_positions: int) -> None:
        super().__init__(cardinality, config)
        self.positions = nn.Embedding(max_positions, config.embedding_dim)
        layer = nn.TransformerEncoderLayer(
            config.embedding_dim,
            config.heads,
            dim_feedforward=config.hidden * 2,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.pool = Pooling(config.pooling if config.pooling != "auto" else "mean", config.embedding_dim)
        self.out_features = config.embedding_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids > 0
        positions = torch.arange(ids.shape[1], device=ids.device).clamp(max=self.positions.num_embeddings - 1)
        x = self.embedding(ids) + self.positions(positions)
        ignore = ~mask
        ignore[:, 0] &= mask.any(1)  # an empty text attends to its first (padding) position instead of nothing
        states = self.encoder(x, src_key_padding_mask=ignore)
        return self.dropout(self.pool(states, mask))


Builder = Callable[..., nn.Module]
_ENCODERS: dict[str, Builder] = {
    "bag": lambda cardinality, config, **_: BagEncoder(cardinality, config),
    "ngram": lambda cardinality, config, ngram_rows=0, out_features=1, **_: NgramEncoder(
        cardinality, config, ngram_rows, out_features
    ),
    "nbsvm": lambda cardinality, config, ngram_rows=0, out_features=1, **_: LinearNgramEncoder(
        "nbsvm", cardinality, config, ngram_rows, out_features
    ),
    "tfidf": lambda cardinality, config, ngram_rows=0, out_features=1, **_: LinearNgramEncoder(
        "tfidf", cardinality, config, ngram_rows, out_features
    ),
    "lstm": lambda cardinality, config, **_: RecurrentEncoder(cardinality, config, "lstm"),
    "gru": lambda cardinality, config, **_: RecurrentEncoder(cardinality, config, "gru"),
    "cnn": lambda cardinality, config, **_: ConvEncoder(cardinality, config),
    "transformer": lambda cardinality, config, length=512, **_: TransformerTextEncoder(cardinality, config, length),
}
ENCODERS = tuple(_ENCODERS)


def build_text_encoder(name: str, cardinality: int, config: TextConfig, **spec: int) -> nn.Module:
    """The encoder registered as ``name`` (``spec``: ``ngram_rows``, ``out_features``, ``length``)."""
    if name not in _ENCODERS:
        raise ConfigError(f"unknown text encoder '{name}'{did_you_mean(name, _ENCODERS)}; choose one of {ENCODERS}")
    return _ENCODERS[name](cardinality, config, **spec)
