"""A rich progress bar on stderr with live loss and metric, updated a few times a second."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

REFRESH_SECONDS = 0.2


class TrainingProgress:
    """Shows epoch, batches done, elapsed time, the running loss and the last validation metric."""

    def __init__(self, enabled: bool | None, epochs: int, steps: int) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.epochs, self.steps = epochs, steps
        self._last = 0.0
        self._metric = ""
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[metric]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("fit", total=steps, epoch=0, epochs=epochs, loss="-", metric="")

    def start_epoch(self, epoch: int) -> None:
        if self.enabled:
            self.progress.reset(
                self.task, total=self.steps, epoch=epoch + 1, epochs=self.epochs, loss="-", metric=self._metric
            )

    def batch(self, step: int, running_loss: float | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= REFRESH_SECONDS or step == self.steps:
            self._last = now
            loss = f"{running_loss:.4f}" if running_loss is not None else "-"
            self.progress.update(self.task, completed=step, loss=loss)

    def end_epoch(self, logs: dict[str, float]) -> None:
        if not self.enabled:
            return
        shown = [f"{k.removeprefix('valid_')} {v:.4f}" for k, v in logs.items() if k.startswith("valid_")][:3]
        self._metric = "valid " + ", ".join(shown) if shown else ""
        self.progress.update(
            self.task, completed=self.steps, loss=f"{logs.get('train_loss', 0.0):.4f}", metric=self._metric
        )

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
