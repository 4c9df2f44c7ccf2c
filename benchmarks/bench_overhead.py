"""overhead: deepmine's Trainer against a hand-written PyTorch loop, same model, same in-memory Adult tensors.

Both build the default tabular MLP the same way (same seed), use AdamW with deepmine's default lr and weight
decay, batch 256, a ``torch.randperm`` shuffle from a seeded generator and index-gathered batches. Runs
alternate (which goes first flips every repeat); the figure is the median seconds per epoch over the repeats.
"""

from __future__ import annotations

import cProfile
import inspect
import io
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import adult_data
import torch
from measure import self_peak_rss_mb
from targets import check, judge
from torch import nn

NAME = "overhead"
TITLE = "Trainer overhead: deepmine Trainer vs a hand-written PyTorch loop (Adult tensors, default MLP)"
RATIO_MAX = 1.05
REPEATS = 11
EPOCHS = 2
SEED = 0
DEEPMINE, HANDWRITTEN = "deepmine Trainer", "hand-written loop"


def adult_tensors(config) -> tuple[list[torch.Tensor], torch.Tensor, dict[str, Any]]:
    """All of adult.data through deepmine's schema inference and FeaturePipeline, once."""
    from deepmine.data.schema import infer_schema
    from deepmine.data.sources import load_table
    from deepmine.features.pipeline import FeaturePipeline
    from deepmine.predictor import to_tensors

    files = adult_data.prepare()
    frame = load_table(str(files.train_csv), config.data)
    schema = infer_schema(frame, adult_data.TARGET)
    pipeline = FeaturePipeline(schema, config.preprocess).fit(frame)
    inputs = to_tensors(pipeline.transform(frame))
    target = torch.from_numpy(pipeline.encode_target(frame).copy())
    spec = model_spec(config, pipeline, len(schema.classes))
    return inputs, target, spec


def model_spec(config, pipeline, n_classes: int) -> dict[str, Any]:
    """The builder's keyword arguments, read off the pipeline by name as ``fit_table`` does."""
    from deepmine.nn.registry import get_model_builder

    builder = get_model_builder(config.model.name)
    names = [p for p in inspect.signature(builder).parameters if p not in ("out_features", "config")]
    return {**{name: getattr(pipeline, name) for name in names}, "out_features": n_classes}


def build_model(config, spec: dict[str, Any]) -> nn.Module:
    """The model deepmine fit would build, from the same seed each time."""
    from deepmine.nn.registry import get_model_builder

    torch.manual_seed(SEED)
    return get_model_builder(config.model.name)(**spec, config=config.model)


def train_deepmine(config, model: nn.Module, inputs, target, epochs: int) -> float:
    """deepmine's Trainer: no validation, early stopping, checkpoint or progress. Returns the last loss."""
    from deepmine.train.trainer import Trainer

    trainer_config = config.trainer.model_copy(
        update={
            "epochs": epochs,
            "early_stopping": False,
            "checkpoint": False,
            "progress": False,
            "schedule": "none",
        }
    )
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        trainer_config,
        config.optimizer,
        generator=torch.Generator().manual_seed(SEED),
    )
    history = trainer.fit(inputs, target)
    return history[-1]["train_loss"]


def train_handwritten(config, model: nn.Module, inputs, target, epochs: int) -> float:
    """The plain PyTorch loop a user would write. Returns the last epoch's mean training loss."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.optimizer.lr, weight_decay=config.optimizer.weight_decay
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(SEED)
    batch_size = int(config.trainer.batch_size)
    n = len(target)
    mean_loss = float("nan")
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = loss_fn(model(*[t[idx] for t in inputs]), target[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        mean_loss = total / n
    return mean_loss


def timed(train: Callable, config, spec, inputs, target, epochs: int) -> tuple[float, float, nn.Module]:
    model = build_model(config, spec)
    torch.manual_seed(SEED)  # dropout draws the same masks in both loops
    started = time.perf_counter()
    loss = train(config, model, inputs, target, epochs)
    return time.perf_counter() - started, loss, model


def profile_run(train: Callable, config, spec, inputs, target, epochs: int) -> pstats.Stats:
    """cProfile of one training call."""
    profiler = cProfile.Profile()
    model = build_model(config, spec)
    torch.manual_seed(SEED)
    profiler.enable()
    train(config, model, inputs, target, epochs)
    profiler.disable()
    return pstats.Stats(profiler, stream=io.StringIO())


def _calls(stats: pstats.Stats) -> dict[str, tuple[int, float]]:
    """``file:function`` → (calls, own seconds), with line numbers dropped so both loops line up."""
    out: dict[str, tuple[int, float]] = {}
    for (file, _line, func), (_cc, calls, own, _cum, _callers) in stats.stats.items():
        key = func if file == "~" or func.startswith("<") else f"{Path(file).name}:{func}"
        prev = out.get(key, (0, 0.0))
        out[key] = (prev[0] + calls, prev[1] + own)
    return out


def profile_comparison(contenders: dict[str, Callable], config, spec, inputs, target, epochs: int) -> dict:
    """Where the time goes in each loop, and the calls only the Trainer makes (or makes more often)."""
    stats = {name: profile_run(train, config, spec, inputs, target, epochs) for name, train in contenders.items()}
    calls = {name: _calls(s) for name, s in stats.items()}
    ours, theirs = calls[DEEPMINE], calls[HANDWRITTEN]
    extra = sorted(
        (
            (key, n - theirs.get(key, (0, 0.0))[0], own)
            for key, (n, own) in ours.items()
            if n > theirs.get(key, (0, 0.0))[0]
        ),
        key=lambda item: -item[2],
    )
    top = {}
    for name, st in stats.items():
        ranked = sorted(calls[name].items(), key=lambda item: -item[1][1])[:12]
        top[name] = {
            "total_seconds": round(st.total_tt, 3),
            "own_seconds_by_function": {k: [n, round(t, 4)] for k, (n, t) in ranked},
        }
    return {
        "top": top,
        "trainer_extra_calls": {k: {"extra_calls": n, "own_seconds": round(t, 4)} for k, n, t in extra[:25]},
    }


def run(progress, repeats: int = REPEATS, epochs: int = EPOCHS) -> dict[str, Any]:
    from deepmine.config import RunConfig

    config = RunConfig()
    inputs, target, spec = adult_tensors(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    contenders = {DEEPMINE: train_deepmine, HANDWRITTEN: train_handwritten}
    progress(f"overhead: {len(target)} rows, {threads} torch threads, {repeats} repeats x {epochs} epochs each")
    for train in contenders.values():  # warm-up: first-call allocations and lazy imports
        timed(train, config, spec, inputs, target, 1)
    per_epoch: dict[str, list[float]] = {name: [] for name in contenders}
    losses: dict[str, float] = {}
    models: dict[str, nn.Module] = {}
    for repeat in range(repeats):
        order = list(contenders) if repeat % 2 == 0 else list(reversed(contenders))
        for name in order:
            seconds, losses[name], models[name] = timed(contenders[name], config, spec, inputs, target, epochs)
            per_epoch[name].append(seconds / epochs)
        progress(
            f"overhead: repeat {repeat + 1}/{repeats}: "
            + ", ".join(f"{n} {per_epoch[n][-1]:.3f} s/epoch" for n in contenders)
        )
    median = {name: statistics.median(values) for name, values in per_epoch.items()}
    ratio = median[DEEPMINE] / median[HANDWRITTEN]
    # Noise only adds time, so on a shared machine the paired and the best-case ratios are worth a look too.
    paired = statistics.median(d / h for d, h in zip(per_epoch[DEEPMINE], per_epoch[HANDWRITTEN], strict=True))
    best = min(per_epoch[DEEPMINE]) / min(per_epoch[HANDWRITTEN])
    same_weights = all(
        torch.allclose(a, b, rtol=1e-4, atol=1e-6)
        for a, b in zip(models[DEEPMINE].state_dict().values(), models[HANDWRITTEN].state_dict().values(), strict=True)
    )
    peak = self_peak_rss_mb()
    runs = [
        {
            "name": name,
            "metrics": {
                "s_per_epoch": round(median[name], 4),
                "min_s_per_epoch": round(min(per_epoch[name]), 4),
                "train_loss": round(losses[name], 5),
            },
            "fit_seconds": round(median[name] * epochs, 3),
            "predict_seconds": None,
            "peak_rss_mb": peak,
            "rows": {"train": len(target)},
            "details": {
                "seconds_per_epoch_each_repeat": [round(v, 4) for v in per_epoch[name]],
                "fit_seconds_is": f"median seconds of one {epochs}-epoch training call",
            },
        }
        for name in contenders
    ]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "title": TITLE,
        "rows": {"train": len(target)},
        "settings": {
            "repeats": repeats,
            "epochs_per_repeat": epochs,
            "torch_threads": threads,
            "batch_size": config.trainer.batch_size,
            "optimizer": config.optimizer.name,
            "lr": config.optimizer.lr,
            "weight_decay": config.optimizer.weight_decay,
            "model": {
                "builder": f"registry '{config.model.name}', one network (ensembles are not the Trainer's cost)",
                "hidden": config.model.hidden,
                "dropout": config.model.dropout,
                **spec,
            },
            "parameters": sum(p.numel() for p in models[DEEPMINE].parameters()),
        },
        "ratio": round(ratio, 4),
        "ratio_diagnostics": {"median_of_paired_ratios": round(paired, 4), "ratio_of_minimums": round(best, 4)},
        "runs": runs,
        "targets": [judge(DEEPMINE, "s/epoch ratio to hand-written (median)", ratio, "<=", RATIO_MAX)],
        "checks": [check(HANDWRITTEN, "same final weights as the Trainer", same_weights)],
        "notes": [
            "Peak RSS is the runner process's (both loops run in it).",
            "Timed: building the optimizer (and the Trainer) plus the training epochs; not model building.",
            f"Ratio diagnostics: median of paired ratios {paired:.3f}, ratio of minimums {best:.3f}.",
        ],
    }
    if ratio > RATIO_MAX:
        progress("overhead: ratio above target, profiling one run of each")
        result["profile"] = profile_comparison(contenders, config, spec, inputs, target, epochs)
    return result
