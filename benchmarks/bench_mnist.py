"""mnist: deepmine's image classifier on MNIST (60k train / 10k test), each contender in its own process.

Runs: deepmine defaults (IDX files, Python API); the classic CNN through config (an explicit layer list); the same
classic CNN as a hand-written PyTorch loop (Adam, batch 64, 3 epochs); deepmine defaults on the same data written as
PNG files in class folders, through the real CLI (`deepmine fit` a folder, `deepmine evaluate` and `deepmine
predict` a folder); the Trainer's time per epoch against the hand-written loop (alternating repeats); the machine's
fp32 matmul peak. Test accuracy after each epoch is recorded for reporting only (epochs are chosen on validation).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from env_info import BENCH_DIR, WORK_DIR, require_files
from measure import deepmine_cli, process, run_measured
from targets import check, judge

NAME = "mnist"
TITLE = "MNIST digits: train 60,000 / test 10,000 (IDX), and the same images as PNG class folders"
DEFAULT_MIN, CLASSIC_MIN, FIT_SECONDS_MAX, RATIO_MAX = 0.993, 0.990, 900.0, 1.05
RUNS = BENCH_DIR / "mnist_runs.py"
PNG_DIR = WORK_DIR / "mnist" / "png"
DEFAULTS, CLASSIC, HANDWRITTEN, PNG = (
    "deepmine defaults",
    "deepmine classic CNN (layer list in config)",
    "classic CNN, hand-written PyTorch loop",
    "deepmine defaults from PNG folders (CLI)",
)


def child(*args: str) -> tuple[dict[str, Any], Any]:
    measured = run_measured([sys.executable, str(RUNS), *args], env=dict(os.environ))
    return measured.json(), measured


def write_pngs(progress) -> tuple[Path, Path]:
    """The IDX images as PNG files in class folders (once; reused while complete)."""
    from PIL import Image

    from deepmine.data.idx import read_idx

    paths = require_files(
        "mnist",
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ],
    )
    limit = int(os.environ.get("DEEPMINE_MNIST_LIMIT", "0") or 0)
    for split, (images, labels) in {"train": paths[:2], "test": paths[2:]}.items():
        x, y = read_idx(images), read_idx(labels)
        if limit:
            x, y = (x[:limit], y[:limit]) if split == "train" else (x[: limit // 2], y[: limit // 2])
        folder = PNG_DIR / split
        marker = folder / f".complete-{len(x)}"
        if marker.exists():
            continue
        progress(f"mnist: writing {len(x)} {split} PNGs under {folder}")
        shutil.rmtree(folder, ignore_errors=True)
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            target = folder / str(int(label))
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target / f"{i:05d}.png")
        marker.touch()
    return PNG_DIR / "train", PNG_DIR / "test"


def record(name: str, result: dict[str, Any], measured, peak: float) -> dict[str, Any]:
    return {
        "name": name,
        "metrics": {
            "accuracy": result["test_accuracy"],
            "s_per_epoch": result["s_per_epoch"],
            "seconds_to_98_7": result["seconds_to_98_7"],
            "gflops": result["gflops_per_second"],
        },
        "fit_seconds": result["fit_seconds"],
        "predict_seconds": result["predict_seconds"],
        "peak_rss_mb": measured.peak_rss_mb,
        "rows": {"train": result["train_rows"], "test": result["test_rows"]},
        "details": {
            **result,
            "share_of_matmul_peak": round(result["gflops_per_second"] / peak, 3),
            "process": process(measured),
        },
    }


def run_png(train: Path, test: Path, artifact: Path, reference: float) -> dict[str, Any]:
    cli = deepmine_cli()
    smoke = (
        ["--set", f"trainer.epochs={os.environ['DEEPMINE_MNIST_EPOCHS']}"]
        if "DEEPMINE_MNIST_EPOCHS" in os.environ
        else []
    )
    fit = run_measured([*cli, "fit", str(train), "--out", str(artifact), "--json", *smoke])
    fitted = fit.json()
    evaluate = run_measured([*cli, "evaluate", str(artifact), str(test), "--json"])
    scored = evaluate.json()
    predictions = artifact.parent / "png-predictions.csv"
    predict = run_measured([*cli, "predict", str(artifact), str(test), "-o", str(predictions)])
    if predict.returncode != 0:
        predict.json()  # raises with the error line
    import pandas as pd

    frame = pd.read_csv(predictions)
    truth = frame["path"].str.split("/").str[0].astype(int)
    predicted_accuracy = float((frame["prediction"].astype(int) == truth).mean())
    return {
        "name": PNG,
        "metrics": {"accuracy": scored["accuracy"], "s_per_epoch": None, "seconds_to_98_7": None, "gflops": None},
        "fit_seconds": fit.wall_seconds,
        "predict_seconds": predict.wall_seconds,
        "peak_rss_mb": max(fit.peak_rss_mb, evaluate.peak_rss_mb, predict.peak_rss_mb),
        "rows": {"train": fitted["rows"] + fitted["valid_rows"], "test": scored["rows"]},
        "details": {
            "timing": "wall seconds of the `deepmine fit FOLDER` / `deepmine predict ARTIFACT FOLDER` processes",
            "fit_reported_seconds": fitted["seconds"],
            "epochs": fitted["epochs"],
            "valid_accuracy": fitted["accuracy"],
            "prediction_rows": len(frame),
            "accuracy_from_predict_csv": predicted_accuracy,
            "difference_to_idx_defaults": round(scored["accuracy"] - reference, 4),
            "fit_process": process(fit),
            "evaluate_process": process(evaluate),
            "predict_process": process(predict),
        },
    }


def run(progress) -> dict[str, Any]:
    require_files("mnist", ["train-images-idx3-ubyte.gz"])
    peak, _ = child("peak")
    progress(f"mnist: fp32 matmul peak {peak['gflops_per_second']} GFLOP/s; deepmine defaults ...")
    runs = []
    defaults, measured = child("deepmine")
    runs.append(record(DEFAULTS, defaults, measured, peak["gflops_per_second"]))
    progress(f"mnist: defaults {defaults['test_accuracy']:.4f}; classic CNN through config ...")
    classic, measured = child("deepmine", f"model.layers={CLASSIC_LAYERS_JSON}")
    runs.append(record(CLASSIC, classic, measured, peak["gflops_per_second"]))
    progress(f"mnist: classic {classic['test_accuracy']:.4f}; hand-written loop ...")
    plain, measured = child("handwritten")
    runs.append(record(HANDWRITTEN, plain, measured, peak["gflops_per_second"]))
    progress("mnist: Trainer overhead (alternating repeats) ...")
    overhead, _ = child("overhead")
    progress(f"mnist: overhead ratio {overhead['ratio']}; PNG class folders through the CLI ...")
    train, test = write_pngs(progress)
    png = run_png(train, test, WORK_DIR / "mnist" / "png-model", defaults["test_accuracy"])
    runs.append(png)
    limit = os.environ.get("DEEPMINE_MNIST_LIMIT")
    notes = [
        "fit seconds of the IDX runs: deepmine's fit_images / the plain loop inside the process, without the "
        "per-epoch test scoring (reporting only); PNG run: wall seconds of the CLI processes.",
        "gflops: training FLOPs per image (torch FlopCounterMode, forward + backward) x training images / median "
        f"seconds per epoch; the machine's fp32 matmul peak in this run: {peak['gflops_per_second']} GFLOP/s "
        f"({peak['threads']} threads).",
        f"Trainer overhead: classic CNN, batch 64, Adam, {overhead['rows']} images, {overhead['repeats']} "
        f"alternating repeats: deepmine {overhead['s_per_epoch']['deepmine Trainer']} s/epoch, hand-written "
        f"{overhead['s_per_epoch']['hand-written loop']} s/epoch, ratio {overhead['ratio']} (median of paired "
        f"ratios {overhead['median_of_paired_ratios']}).",
    ]
    if limit or os.environ.get("DEEPMINE_MNIST_EPOCHS"):
        notes.insert(
            0,
            f"SMOKE TEST: DEEPMINE_MNIST_LIMIT={limit}, DEEPMINE_MNIST_EPOCHS="
            f"{os.environ.get('DEEPMINE_MNIST_EPOCHS')}; not the benchmark figures.",
        )
    same = abs(png["metrics"]["accuracy"] - defaults["test_accuracy"]) <= 0.002
    return {
        "benchmark": NAME,
        "title": TITLE,
        "rows": {"train": defaults["train_rows"] + defaults["valid_rows"], "test": defaults["test_rows"]},
        "matmul_peak_gflops": peak["gflops_per_second"],
        "overhead": overhead,
        "runs": runs,
        "targets": [
            judge(DEFAULTS, "accuracy", defaults["test_accuracy"], ">=", DEFAULT_MIN),
            judge(DEFAULTS, "fit", defaults["fit_seconds"], "<=", FIT_SECONDS_MAX, " s"),
            judge(CLASSIC, "accuracy", classic["test_accuracy"], ">=", CLASSIC_MIN),
            judge(CLASSIC, "Trainer s/epoch ratio to hand-written", overhead["ratio"], "<=", RATIO_MAX),
        ],
        "checks": [
            check(PNG, "accuracy within 0.2 points of the IDX defaults", same),
            check(PNG, "predict CSV keeps every file path", png["details"]["prediction_rows"] == png["rows"]["test"]),
        ],
        "notes": notes,
    }


CLASSIC_LAYERS_JSON = (
    '["conv(32,3)", "maxpool(2)", "conv(64,3)", "maxpool(2)", "conv(64,3)", "flatten", "dense(64)", "dense(10)"]'
)
