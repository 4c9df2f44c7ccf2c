"""Trainer: one small hook-based loop for every task.

Mini-batches (batch size 1 = SGD, ``full`` = batch gradient descent), the configured optimizer,
L1/L2 penalties, LR schedules, early stopping with best-weight restore, gradient clipping,
a checkpoint after every epoch and exact resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepmine.config import OptimizerConfig, TrainerConfig
from deepmine.exceptions import ConfigError
from deepmine.io_utils import int_keys, load_state, save_state
from deepmine.train.batches import BatchSource, TensorBatches
from deepmine.train.callbacks import Callback, EarlyStopping
from deepmine.train.distributed import agree_logs, rank, shard, wrap_model
from deepmine.train.optim import PER_BATCH_SCHEDULES, build_optimizer, build_scheduler, l1_penalty
from deepmine.train.progress import TrainingProgress

Evaluator = Callable[[nn.Module, Sequence[torch.Tensor], torch.Tensor], dict[str, float]]


class Trainer:
    """Fits ``model`` on in-memory tensors or any :class:`BatchSource`.

    ``evaluate(model, valid_inputs, valid_target)`` scores the validation split each epoch; with a
    batch source, ``valid_inputs`` is whatever the caller passed (e.g. a validation source) and
    ``valid_target`` may be ``None``.

    ``started`` is the ``time.perf_counter()`` reading the run's clock starts from (default: when :meth:`fit`
    begins); checkpoints carry the time spent so far, so :meth:`elapsed` counts a resumed run from its first start.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        trainer: TrainerConfig,
        optimizer: OptimizerConfig,
        *,
        generator: torch.Generator,
        evaluate: Evaluator | None = None,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        fingerprint: str = "",
        started: float | None = None,
    ) -> None:
        self.model = model
        self.train_model = wrap_model(model)  # DistributedDataParallel under torchrun, else the model itself
        self.loss_fn = loss_fn
        self.config = trainer
        self.optimizer_config = optimizer
        self.generator = generator
        self.evaluate = evaluate
        self.callbacks = list(callbacks)
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.fingerprint = fingerprint
        self.started = started
        self.earlier_seconds = 0.0  # spent by the runs a resume continues, before their last checkpoint
        self.stop_training = False
        self.best_epoch = -1
        self.history: list[dict[str, float]] = []
        self.optimizer = build_optimizer(model.parameters(), optimizer)
        self.scheduler: Any = None

    # ------------------------------------------------------------------------------------------
    def monitor_key(self) -> str:
        monitor = self.config.monitor
        return "valid_loss" if monitor in ("auto", "loss") else f"valid_{monitor}"

    def elapsed(self) -> float:
        """Seconds this run has taken so far, the interrupted runs it resumes included."""
        return self.earlier_seconds + time.perf_counter() - self.started

    def fit(
        self,
        inputs: Sequence[torch.Tensor] | BatchSource,
        target: torch.Tensor | None = None,
        valid_inputs: Any = None,
        valid_target: torch.Tensor | None = None,
    ) -> list[dict[str, float]]:
        """Train; return the per-epoch history (train loss, validation metrics, seconds).

        ``inputs`` is a list of tensors sliced into mini-batches with ``target``, or a batch source.
        """
        if self.started is None:
            self.started = time.perf_counter()
        if isinstance(inputs, BatchSource):
            source = inputs
        else:
            if target is None:
                raise TypeError("Trainer.fit needs a target tensor when inputs are tensors")
            source = TensorBatches(inputs, target, self.config.batch_size)
        source = shard(source)  # under torchrun: this rank's slice of every global batch
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        steps = source.steps()
        self.scheduler = build_scheduler(self.optimizer, self.config, self.optimizer_config.lr, steps)
        has_valid = valid_inputs is not None and self.evaluate is not None
        if self.config.early_stopping and has_valid:
            if self.config.monitor not in ("auto", "loss") and not any(
                isinstance(c, EarlyStopping) for c in self.callbacks
            ):
                self._check_monitor(valid_inputs, valid_target)
            delta = self.config.min_delta
            if delta is None:  # auto: what the model asks for (frozen ensemble members damp the loss), else 0
                delta = getattr(self.model, "early_stopping_delta", 0.0)
            self.callbacks.append(EarlyStopping(self.monitor_key(), self.config.patience, min_delta=delta))
        start_epoch = self._maybe_resume()
        for cb in self.callbacks:
            cb.on_fit_start(self)
        progress = TrainingProgress(self.config.progress if rank() == 0 else False, self.config.epochs, steps)
        l1 = self.optimizer_config.l1
        clip = self.config.grad_clip
        per_batch_schedule = self.scheduler is not None and self.config.schedule in PER_BATCH_SCHEDULES
        try:
            for epoch in range(start_epoch, self.config.epochs):
                if self.stop_training:
                    break
                started = time.perf_counter()
                progress.start_epoch(epoch)
                for cb in self.callbacks:
                    cb.on_epoch_start(self, epoch)
                self.model.train()
                total = torch.zeros(())
                seen = 0
                for step, (batch, batch_target) in enumerate(source.epoch(self.generator), start=1):
                    loss = self.loss_fn(self.train_model(*batch), batch_target)
                    objective = loss + l1 * l1_penalty(self.model) if l1 else loss
                    self.optimizer.zero_grad(set_to_none=True)
                    objective.backward()
                    if clip:
                        nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                    self.optimizer.step()
                    if per_batch_schedule:
                        self.scheduler.step()
                    rows = len(batch_target)
                    total += loss.detach() * rows
                    seen += rows
                    for cb in self.callbacks:
                        cb.on_batch_end(self, step, loss)
                    if progress.enabled:
                        progress.batch(step, float(total) / seen)
                logs = {"epoch": epoch + 1, "train_loss": float(total) / max(seen, 1)}
                if has_valid and rank() == 0:
                    logs.update(
                        {f"valid_{k}": v for k, v in self.evaluate(self.model, valid_inputs, valid_target).items()}
                    )
                logs = agree_logs(logs)  # under torchrun every rank takes rank 0's metrics: same early stopping
                if self.scheduler is not None and not per_batch_schedule:
                    self.scheduler.step(logs.get(self.monitor_key(), logs["train_loss"]))
                logs["lr"] = self.optimizer.param_groups[0]["lr"]
                logs["seconds"] = time.perf_counter() - started
                self.history.append(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                progress.end_epoch(logs)
                self._save_checkpoint(epoch)
        finally:
            progress.close()
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self.history

    def _check_monitor(self, valid_inputs, valid_target) -> None:
        available = self.evaluate(self.model, valid_inputs, valid_target)
        if self.config.monitor not in available:
            from deepmine.exceptions import did_you_mean

            raise ConfigError(
                f"trainer.monitor '{self.config.monitor}' is not a validation metric for this task"
                f"{did_you_mean(self.config.monitor, available)}; choose one of {sorted(available)}"
            )

    # ---- checkpoints ---------------------------------------------------------------------------
    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "fingerprint": self.fingerprint,
            "seconds": self.elapsed(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self.generator.get_state(),
            "history": self.history,
            "stop_training": self.stop_training,
            "callbacks": {key: cb.state_dict() for key, cb in self._keyed_callbacks().items()},
        }

    def _keyed_callbacks(self) -> dict[str, Callback]:
        """Callbacks named by class and rank among their class, so a resume may add or drop others."""
        seen: dict[str, int] = {}
        keyed = {}
        for cb in self.callbacks:
            name = type(cb).__name__
            keyed[f"{name}:{seen.get(name, 0)}"] = cb
            seen[name] = seen.get(name, 0) + 1
        return keyed

    def _save_checkpoint(self, epoch: int) -> None:
        if self.checkpoint_dir is not None and self.config.checkpoint and rank() == 0:
            save_state(self.checkpoint_dir, self._state(epoch))

    def _maybe_resume(self) -> int:
        if not self.resume:
            return 0
        if self.checkpoint_dir is None or not (self.checkpoint_dir / "state.json").exists():
            import warnings

            from deepmine.exceptions import DeepmineWarning

            where = f" in '{self.checkpoint_dir}'" if self.checkpoint_dir is not None else ""
            warnings.warn(
                f"--resume: no checkpoint of an earlier run{where}; training starts from the first epoch",
                DeepmineWarning,
                stacklevel=3,
            )
            return 0
        state = load_state(self.checkpoint_dir)
        if state["fingerprint"] != self.fingerprint:
            raise ConfigError(
                f"the checkpoint in '{self.checkpoint_dir}' was made with other data or settings; "
                "run without --resume to start over (or delete that folder)"
            )
        self.model.load_state_dict(state["model"])
        optimizer_state = state["optimizer"]
        optimizer_state["state"] = int_keys(optimizer_state["state"])
        self.optimizer.load_state_dict(optimizer_state)
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["shuffle_rng"])
        self.history = state["history"]
        self.earlier_seconds = float(state.get("seconds", 0.0))  # checkpoints of older releases lack it
        self.stop_training = state["stop_training"]
        for key, cb in self._keyed_callbacks().items():
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])
        return int(state["epoch"]) + 1
