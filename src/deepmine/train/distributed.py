"""Distributed data-parallel training with ``torch.distributed`` (gloo on CPU, nccl on GPU).

``torchrun --nproc-per-node N -m deepmine fit …`` starts N processes; each builds the same model from the same
seed, the Trainer wraps it in :class:`~torch.nn.parallel.DistributedDataParallel` and reads its own shard of
every shuffled global batch (:class:`ShardedBatches`: same number of steps on every rank, global batch size =
``trainer.batch_size``). Rank 0 evaluates and broadcasts the epoch's logs, so early stopping decides the same
on every rank; only rank 0 writes checkpoints, the artifact and the MLflow run. ``deepmine fit --devices N``
runs torchrun itself. Multi-node: the same command on every machine with torchrun's rendezvous options
(``--nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:29400 --rdzv-id JOB``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from deepmine.train.batches import Batch, BatchSource


def world_size() -> int:
    """Processes in the job (``$WORLD_SIZE`` set by torchrun; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def setup() -> bool:
    """Join the process group torchrun describes (once); return whether training is distributed."""
    if not is_distributed():
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return True


def wrap_model(model: nn.Module) -> nn.Module:
    """``model`` in DistributedDataParallel when running under torchrun, else unchanged."""
    if not setup():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


class ShardedBatches:
    """This rank's slice of every global batch of ``source`` (contiguous, nearly equal slices)."""

    def __init__(self, source: BatchSource, rank: int, world: int) -> None:
        self.source = source
        self.rank = rank
        self.world = world
        self.rows = source.rows

    def steps(self) -> int:
        return self.source.steps()

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        for inputs, target in self.source.epoch(generator):
            yield [t.tensor_split(self.world)[self.rank] for t in inputs], target.tensor_split(self.world)[self.rank]


def shard(source: BatchSource) -> BatchSource:
    """The rank's shard of ``source`` under torchrun (every rank shuffles alike: same seed), else ``source``."""
    if not is_distributed():
        return source
    return ShardedBatches(source, rank(), world_size())


def agree_logs(logs: dict[str, Any]) -> dict[str, Any]:
    """Average ``train_loss`` over the ranks and give every rank rank 0's logs (its validation metrics)."""
    if not is_distributed():
        return logs
    import torch.distributed as dist

    loss = torch.tensor([float(logs.get("train_loss", 0.0))], dtype=torch.float64)
    dist.all_reduce(loss)
    shared: list[Any] = [logs]
    dist.broadcast_object_list(shared, src=0)
    agreed = dict(shared[0])
    agreed["train_loss"] = float(loss.item()) / world_size()
    return agreed


def strip_devices(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--devices N`` / ``--devices=N``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--devices":
            skip = True
            continue
        if arg.startswith("--devices="):
            continue
        out.append(arg)
    return out


LAUNCHED = "DEEPMINE_LAUNCHED"


def launch(devices: int, argv: Sequence[str]) -> int:
    """Run ``deepmine ARGV`` (without ``--devices``) in ``devices`` processes through torchrun; its exit code."""
    if is_distributed():
        from deepmine.exceptions import ConfigError

        raise ConfigError("--devices starts torchrun itself; under torchrun leave --devices out")
    command = [
        sys.executable,
        "-m",
        "deepmine.train.torchrun",
        "--standalone",
        f"--nproc-per-node={devices}",
        "-m",
        "deepmine",
        *strip_devices(argv),
    ]
    cores = os.cpu_count() or 1
    if devices > cores and not torch.cuda.is_available():
        import warnings

        from deepmine.exceptions import DeepmineWarning

        warnings.warn(
            f"--devices {devices} starts {devices} training processes on {cores} CPU core(s), which crowd each other "
            f"out; use --devices {cores} or fewer",
            DeepmineWarning,
            stacklevel=2,
        )
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, cores // devices)))
    env[LAUNCHED] = "1"  # the workers leave "interrupted" to this process
    return subprocess.run(command, env=env, check=False).returncode
