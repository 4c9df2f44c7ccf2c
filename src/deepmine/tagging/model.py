"""The tagger network: word + character-CNN + casing + feature-column embeddings → BiLSTM → tag scores → CRF."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deepmine.nn.crf import CRF
from deepmine.tagging.schemes import allowed_transitions


class CharCNN(nn.Module):
    """Per-word max-pooled convolution (width 3) over character embeddings; padding characters masked."""

    def __init__(self, chars: int, dim: int, filters: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(chars, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, filters, kernel_size=3, padding=1)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        batch, steps, width = chars.shape
        flat = chars.reshape(batch * steps, width)
        out = self.conv(self.embed(flat).transpose(1, 2))  # (words, filters, width)
        out = out.masked_fill((flat == 0).unsqueeze(1), float("-inf")).amax(dim=2)
        out = torch.where(torch.isfinite(out), out, torch.zeros_like(out))  # padding words: zeros
        return out.reshape(batch, steps, -1)


class Tagger(nn.Module):
    """Emission scores (batch, steps, tags) from padded inputs; ``crf`` holds the transition scores."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        sizes = spec["sizes"]
        self.word = nn.Embedding(sizes["words"], spec["word_dim"], padding_idx=0)
        width = spec["word_dim"]
        self.char = CharCNN(sizes["chars"], spec["char_dim"], spec["char_filters"]) if spec["char_filters"] else None
        width += spec["char_filters"]
        self.casing = nn.Embedding(sizes["casings"], spec["casing_dim"], padding_idx=0) if spec["casing_dim"] else None
        width += spec["casing_dim"]
        self.features = nn.ModuleList(nn.Embedding(n, spec["feature_dim"], padding_idx=0) for n in sizes["features"])
        width += spec["feature_dim"] * len(sizes["features"])
        self.dropout = nn.Dropout(spec["dropout"])
        self.lstm = nn.LSTM(
            width, spec["hidden"], num_layers=spec["layers"], bidirectional=True, batch_first=True,
            dropout=spec["dropout"] if spec["layers"] > 1 else 0.0,
        )  # fmt: skip
        self.out = nn.Linear(2 * spec["hidden"], sizes["tags"])
        self.crf = None
        if spec["crf"]:
            allowed = allowed_transitions(spec["tags"], spec["internal"]) if spec["constrain"] else (None,) * 3
            self.crf = CRF(sizes["tags"], *allowed)

    def forward(
        self,
        words: torch.Tensor,
        chars: torch.Tensor,
        casing: torch.Tensor,
        features: torch.Tensor,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        parts = [self.word(words)]
        if self.char is not None:
            parts.append(self.char(chars))
        if self.casing is not None:
            parts.append(self.casing(casing))
        parts.extend(embed(features[:, k]) for k, embed in enumerate(self.features))
        x = self.dropout(torch.cat(parts, dim=2))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=words.shape[1])
        return self.out(self.dropout(hidden))

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tag ids (batch, steps): Viterbi with the CRF, else the arg-max per token."""
        if self.crf is None:
            return emissions.argmax(dim=2).masked_fill(~mask, 0)
        return self.crf.decode(emissions, mask)


class TaggingLoss(nn.Module):
    """Mean negative log-likelihood per sentence under the CRF (or token cross-entropy without one)."""

    def __init__(self, model: Tagger) -> None:
        super().__init__()
        self.crf = model.crf  # shared with the model (its parameters are trained through the model)

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        mask = tags >= 0
        if self.crf is None:
            return nn.functional.cross_entropy(
                emissions.reshape(-1, emissions.shape[2]), tags.reshape(-1), ignore_index=-1
            )
        return self.crf.neg_log_likelihood(emissions, tags.clamp(min=0), mask).mean()
