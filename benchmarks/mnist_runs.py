"""One MNIST contender per process (called by bench_mnist.py); prints one JSON object on stdout.

    python benchmarks/mnist_runs.py deepmine [--set key=value ...]   deepmine's Python API, test accuracy per epoch
    python benchmarks/mnist_runs.py handwritten                      the classic CNN as a plain PyTorch loop
    python benchmarks/mnist_runs.py overhead                         Trainer vs plain loop, alternating repeats
    python benchmarks/mnist_runs.py peak                             fp32 matmul GFLOP/s (2048x2048, all cores)

Test accuracy after each epoch is for reporting only; deepmine selects epochs on its validation split.
``DEEPMINE_MNIST_LIMIT`` (rows) and ``DEEPMINE_MNIST_EPOCHS`` shrink the run for a smoke test of the benchmark
itself (the results then say SMOKE TEST).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch
from env_info import require_files
from torch import nn

ANCHOR = 0.987
SEED = 0
CLASSIC_LAYERS = (
    "conv(32,3) -> maxpool(2) -> conv(64,3) -> maxpool(2) -> conv(64,3) -> flatten -> dense(64) -> dense(10)"
)
FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from deepmine.data.idx import read_idx

    x, y, xt, yt = (read_idx(p) for p in require_files("mnist", FILES))
    limit = int(os.environ.get("DEEPMINE_MNIST_LIMIT", "0") or 0)
    if limit:  # a smoke test of the benchmark itself, not a figure
        x, y, xt, yt = x[:limit], y[:limit], xt[: limit // 2], yt[: limit // 2]
    return x, y.astype(np.int64), xt, yt.astype(np.int64)


def train_step_flops(model: nn.Module, example: torch.Tensor) -> float:
    """FLOPs of one forward + backward pass per image (torch's FlopCounterMode)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    saved = copy.deepcopy(model.state_dict())  # batch-norm running statistics must not move
    counter = FlopCounterMode(display=False)
    model.train()
    with counter:
        model(example).sum().backward()
    model.zero_grad(set_to_none=True)
    model.load_state_dict(saved)
    return counter.get_total_flops() / len(example)


def first_reach(epochs: list[dict[str, Any]]) -> float | None:
    """Training seconds until the test accuracy first reaches the anchor (98.7 %)."""
    total = 0.0
    for epoch in epochs:
        total += epoch["seconds"]
        if epoch["test_accuracy"] >= ANCHOR:
            return round(total, 2)
    return None


# ---- deepmine -----------------------------------------------------------------------------------------------
def run_deepmine(overrides: dict[str, Any]) -> dict[str, Any]:
    from deepmine.images.config import build_image_config
    from deepmine.images.predictor import ImagePredictor
    from deepmine.images.task import fit_images
    from deepmine.train.callbacks import Callback

    x, y, xt, yt = data()
    smoke = (
        {"trainer.epochs": int(os.environ["DEEPMINE_MNIST_EPOCHS"])} if "DEEPMINE_MNIST_EPOCHS" in os.environ else {}
    )
    config = build_image_config(None, {"trainer.progress": False, "trainer.checkpoint": False, **smoke, **overrides})

    class TestAccuracy(Callback):
        """Test accuracy after each epoch (reporting only); its own time is measured and taken out."""

        def __init__(self) -> None:
            self.epochs: list[dict[str, Any]] = []
            self.seconds = 0.0
            self.flops = None

        def on_fit_start(self, trainer) -> None:
            started = time.perf_counter()
            example = torch.zeros(8, 1, 28, 28).contiguous(
                memory_format=torch.channels_last if config.model.channels_last else torch.contiguous_format
            )
            self.flops = train_step_flops(trainer.model, example)
            self.seconds += time.perf_counter() - started

        def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
            started = time.perf_counter()
            probe: ImagePredictor = trainer.predictor
            accuracy = float((probe.outputs(probe.load(xt)).argmax(1).numpy() == yt).mean())
            trainer.model.train()
            self.epochs.append(
                {
                    "epoch": epoch + 1,
                    "seconds": round(logs["seconds"], 2),
                    "valid_accuracy": logs.get("valid_accuracy"),
                    "test_accuracy": accuracy,
                }
            )
            print(
                f"epoch {epoch + 1}: {logs['seconds']:.1f} s, test accuracy {accuracy:.4f}", file=sys.stderr, flush=True
            )
            self.seconds += time.perf_counter() - started

    callback = TestAccuracy()
    started = time.perf_counter()
    predictor = fit_images(x, config, labels=y, callbacks=[callback])
    fit_seconds = time.perf_counter() - started - callback.seconds
    started = time.perf_counter()
    scored = predictor.evaluate(xt, yt)
    predict_seconds = time.perf_counter() - started
    epochs = callback.epochs
    train_rows = predictor.training["rows"]
    per_epoch = statistics.median(e["seconds"] for e in epochs)
    return {
        "test_accuracy": scored["accuracy"],
        "fit_seconds": round(fit_seconds, 2),
        "predict_seconds": round(predict_seconds, 2),
        "s_per_epoch": round(per_epoch, 2),
        "epochs": epochs,
        "best_epoch": predictor.training["best_epoch"],
        "seconds_to_98_7": first_reach(epochs),
        "train_rows": train_rows,
        "valid_rows": predictor.training["valid_rows"],
        "test_rows": len(yt),
        "parameters": predictor.model_spec["parameters"],
        "train_flops_per_image": callback.flops,
        "gflops_per_second": round(callback.flops * train_rows / per_epoch / 1e9, 2),
        "config": {k: v for k, v in overrides.items()},
    }


# ---- the classic CNN as a plain PyTorch loop ------------------------------------------------------------------
def classic_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def handwritten_epochs(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, generator: torch.Generator, on_epoch=None
) -> list[float]:
    """Adam (lr 1e-3), batch 64, shuffled each epoch: the loop a user writes."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 64):
            idx = order[start : start + 64]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
        if on_epoch is not None:
            on_epoch(epoch, seconds[-1])
    return seconds


def run_handwritten(epochs: int = 3) -> dict[str, Any]:
    x, y, xt, yt = data()
    torch.manual_seed(SEED)
    xf = torch.from_numpy(x).float().div_(255).unsqueeze(1)
    xtf = torch.from_numpy(xt).float().div_(255).unsqueeze(1)
    model = classic_net()
    flops = train_step_flops(model, xf[:8])
    log: list[dict[str, Any]] = []

    def test(epoch: int, seconds: float) -> None:
        model.eval()
        with torch.inference_mode():
            accuracy = float((model(xtf).argmax(1).numpy() == yt).mean())
        log.append({"epoch": epoch + 1, "seconds": round(seconds, 2), "test_accuracy": accuracy})
        print(f"hand-written epoch {epoch + 1}: {seconds:.1f} s, test accuracy {accuracy:.4f}", file=sys.stderr)

    seconds = handwritten_epochs(model, xf, torch.from_numpy(y), epochs, torch.Generator().manual_seed(SEED), test)
    per_epoch = statistics.median(seconds)
    started = time.perf_counter()
    model.eval()
    with torch.inference_mode():
        accuracy = float((model(xtf).argmax(1).numpy() == yt).mean())
    return {
        "test_accuracy": accuracy,
        "fit_seconds": round(sum(seconds), 2),
        "predict_seconds": round(time.perf_counter() - started, 2),
        "s_per_epoch": round(per_epoch, 2),
        "epochs": log,
        "seconds_to_98_7": first_reach(log),
        "train_rows": len(y),
        "test_rows": len(yt),
        "train_flops_per_image": flops,
        "gflops_per_second": round(flops * len(y) / per_epoch / 1e9, 2),
    }


# ---- Trainer overhead ----------------------------------------------------------------------------------------
def run_overhead(repeats: int = 7, rows: int = 20000) -> dict[str, Any]:
    """deepmine's Trainer + image batch source (uint8 batches normalized on the fly, no augmentation) against the
    plain loop on float tensors made once; same classic net (built from the layer list), same data, batch 64, Adam."""
    from deepmine.config import OptimizerConfig
    from deepmine.images.config import ImageModelConfig, ImageTrainerConfig
    from deepmine.images.dataset import ImageBatches
    from deepmine.images.transforms import ImageSpec
    from deepmine.nn.vision import build_layers
    from deepmine.train.trainer import Trainer

    x, y, _, _ = data()
    x, y = x[:rows], y[:rows]
    spec = ImageSpec(28, 28, 1, "pad", [0.0], [1.0], False, 0, False, 0.0)
    pixels = torch.from_numpy(np.ascontiguousarray(x[..., None]))
    target = torch.from_numpy(y)
    xf = pixels.permute(0, 3, 1, 2).float().div_(255).clone(memory_format=torch.contiguous_format)  # plain NCHW
    layers = CLASSIC_LAYERS.replace("{classes}", "10")
    model_config = ImageModelConfig(channels_last=False)

    def build() -> nn.Module:
        torch.manual_seed(SEED)
        return build_layers(layers, 1, 28, 28, 10)

    def deepmine_epoch() -> float:
        model = build()
        trainer_config = ImageTrainerConfig(
            epochs=1, batch_size=64, schedule="none", early_stopping=False, checkpoint=False, progress=False
        )
        started = time.perf_counter()
        trainer = Trainer(
            model,
            nn.CrossEntropyLoss(),
            trainer_config,
            OptimizerConfig(name="adam", lr=1e-3, weight_decay=0.0),
            generator=torch.Generator().manual_seed(SEED),
        )
        source = ImageBatches(pixels, target, spec, 64, train=True, channels_last=model_config.channels_last)
        trainer.fit(source)
        return time.perf_counter() - started

    def plain_epoch() -> float:
        model = build()
        started = time.perf_counter()
        handwritten_epochs(model, xf, target, 1, torch.Generator().manual_seed(SEED))
        return time.perf_counter() - started

    contenders = {"deepmine Trainer": deepmine_epoch, "hand-written loop": plain_epoch}
    for run in contenders.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for repeat in range(repeats):
        order = list(contenders) if repeat % 2 == 0 else list(reversed(contenders))
        for name in order:
            times[name].append(contenders[name]())
        print(
            f"overhead repeat {repeat + 1}/{repeats}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()),
            file=sys.stderr,
            flush=True,
        )
    median = {name: statistics.median(t) for name, t in times.items()}
    paired = statistics.median(a / b for a, b in zip(*times.values(), strict=True))
    return {
        "rows": len(y),
        "repeats": repeats,
        "memory_format": "NCHW in both loops (deepmine's image defaults use channels_last, faster on CPU)",
        "s_per_epoch": {name: round(v, 3) for name, v in median.items()},
        "each_repeat": {name: [round(v, 3) for v in t] for name, t in times.items()},
        "ratio": round(median["deepmine Trainer"] / median["hand-written loop"], 4),
        "median_of_paired_ratios": round(paired, 4),
    }


def run_peak(repeats: int = 10) -> dict[str, Any]:
    """fp32 matmul peak: the best of ``repeats`` 2048x2048 products, all cores."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    best = min(_timed_mm(a, b) for _ in range(repeats))
    return {"gflops_per_second": round(2 * 2048**3 / best / 1e9, 1), "threads": torch.get_num_threads()}


def _timed_mm(a: torch.Tensor, b: torch.Tensor) -> float:
    started = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    what, rest = argv[0], argv[1:]
    if what == "deepmine":
        overrides = {}
        for item in rest:
            key, _, value = item.partition("=")
            overrides[key.removeprefix("--set ").strip()] = json.loads(value) if value[:1] in "[{0123456789" else value
        result = run_deepmine(overrides)
    elif what == "handwritten":
        result = run_handwritten()
    elif what == "overhead":
        result = run_overhead()
    elif what == "peak":
        result = run_peak()
    else:
        print(f"error: unknown run '{what}'", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
