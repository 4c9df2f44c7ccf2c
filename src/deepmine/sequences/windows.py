"""Sliding windows over one multivariate series, served lazily to the Trainer as a batch source."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from deepmine.train.batches import Batch, batch_indices


def window_starts(first_target: int, last_target_end: int, lookback: int, horizon: int) -> np.ndarray:
    """Start rows of every window whose forecast lies in rows ``[first_target, last_target_end)``.

    The lookback of a window may reach back before ``first_target`` (as in the DLinear/PatchTST protocol:
    the test windows' history reaches into the validation rows)."""
    lowest = max(0, first_target - lookback)
    highest = last_target_end - lookback - horizon
    return np.arange(lowest, highest + 1, dtype=np.int64)


class WindowBatches:
    """``(lookback window, next horizon rows)`` pairs cut from ``series`` (rows, channels) on the fly."""

    def __init__(
        self,
        series: torch.Tensor,
        starts: np.ndarray,
        lookback: int,
        horizon: int,
        batch_size: int,
        shuffle: bool = True,
    ) -> None:
        self.series = series
        self.starts = torch.as_tensor(starts, dtype=torch.long)
        self.lookback, self.horizon = lookback, horizon
        self.rows = len(self.starts)
        self.batch_size = max(1, min(int(batch_size), max(self.rows, 1)))
        self.shuffle = shuffle
        self._past = torch.arange(lookback)
        self._future = torch.arange(lookback, lookback + horizon)

    def steps(self) -> int:
        return len(batch_indices(self.rows, self.batch_size, torch.Generator().manual_seed(0), shuffle=False))

    def window(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self.starts[idx].unsqueeze(1)
        return self.series[starts + self._past], self.series[starts + self._future]

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        for idx in batch_indices(self.rows, self.batch_size, generator, shuffle=self.shuffle):
            past, future = self.window(idx)
            yield [past], future

    def ordered(self, chunk: int = 1024) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every window in order, in chunks (for evaluation)."""
        for begin in range(0, self.rows, chunk):
            yield self.window(torch.arange(begin, min(begin + chunk, self.rows)))
