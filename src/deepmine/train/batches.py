"""Batch sources: what the Trainer iterates over each epoch.

``TensorBatches`` slices in-memory tensors (tables, recommenders). Any other object with the same
three members (``rows``, ``steps()``, ``epoch(generator)``) can feed the Trainer: a lazily decoded
image folder, a streamed Parquet file, one rank's shard in distributed training.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import torch

Batch = tuple[list[torch.Tensor], torch.Tensor]


@runtime_checkable
class BatchSource(Protocol):
    """Yields ``(inputs, target)`` mini-batches; shuffles with the generator it is given."""

    rows: int

    def steps(self) -> int:
        """Number of batches one epoch yields (for progress bars and per-batch LR schedules)."""
        ...

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        """One pass over the data, shuffled with ``generator`` when the source shuffles."""
        ...


def batch_indices(n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True) -> list[torch.Tensor]:
    """Shuffled index batches; a trailing batch of one row is merged away when batches are larger."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and batch_size > 1 and len(batches[-1]) == 1:
        batches[-2] = torch.cat(batches[-2:])
        batches.pop()
    return batches


class TensorBatches:
    """Shuffled mini-batches of in-memory tensors (``batch_size`` ``"full"`` = one batch)."""

    def __init__(self, inputs: Sequence[torch.Tensor], target: torch.Tensor, batch_size: int | str) -> None:
        self.inputs = list(inputs)
        self.target = target
        self.rows = len(target)
        self.batch_size = self.rows if batch_size == "full" else max(1, min(int(batch_size), self.rows))

    def steps(self) -> int:
        return len(batch_indices(self.rows, self.batch_size, torch.Generator().manual_seed(0), shuffle=False))

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        for idx in batch_indices(self.rows, self.batch_size, generator):
            yield [t[idx] for t in self.inputs], self.target[idx]
