"""Length-bucketed batches: rows sorted by text length within shuffled chunks, each batch cut to its longest
text, so padding costs little compute."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from deepmine.train.batches import Batch

CHUNK_BATCHES = 50


class LengthBuckets:
    """A :class:`~deepmine.train.batches.BatchSource` over in-memory tensors whose ``text_positions`` inputs are
    right-padded id rows: each epoch shuffles (with the trainer's generator), sorts by length inside chunks of
    ``CHUNK_BATCHES`` batches, and yields the batches in shuffled order, text inputs trimmed to the batch."""

    def __init__(
        self, inputs: Sequence[torch.Tensor], target: torch.Tensor, batch_size: int, text_positions: Sequence[int]
    ) -> None:
        self.inputs = list(inputs)
        self.target = target
        self.rows = len(target)
        self.batch_size = max(1, min(int(batch_size), self.rows))
        self.text_positions = list(text_positions)
        self.lengths = sum(((self.inputs[i] > 0).sum(1) for i in self.text_positions), torch.zeros(self.rows))

    def steps(self) -> int:
        return -(-self.rows // self.batch_size)

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(self.rows, generator=generator)
        chunk = self.batch_size * CHUNK_BATCHES
        batches: list[torch.Tensor] = []
        for start in range(0, self.rows, chunk):
            part = order[start : start + chunk]
            part = part[torch.argsort(self.lengths[part], stable=True)]
            batches.extend(torch.split(part, self.batch_size))
        for b in torch.randperm(len(batches), generator=generator).tolist():
            idx = batches[b]
            yield [self._take(i, t, idx) for i, t in enumerate(self.inputs)], self.target[idx]

    def _take(self, position: int, tensor: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        rows = tensor[idx]
        if position not in self.text_positions:
            return rows
        used = int((rows > 0).any(0).nonzero().max()) + 1 if bool((rows > 0).any()) else 1
        return rows[:, :used]
