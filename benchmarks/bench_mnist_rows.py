"""mnist-rows: MNIST as row sequences (28 steps × 28 values) with an LSTM through config
(examples/mnist_rows.yaml via `SequenceClassifier(config=...)`), against the same LSTM(128) as a plain PyTorch
loop; 60k train / 10k test, each a child process of the runner.

    python benchmarks/bench_mnist_rows.py FOLDER CONFIG   (the deepmine child: prints one JSON object)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from env_info import BENCH_DIR, REPO_ROOT, require_files
from measure import process, run_measured
from targets import judge

NAME = "mnist-rows"
TITLE = "MNIST as 28 row steps × 28 values, LSTM(128) through config (test accuracy)"
ACCURACY_MIN = 0.98
FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
CONFIG = REPO_ROOT / "examples" / "mnist_rows.yaml"


def child(folder: Path, config: Path) -> dict[str, Any]:
    from deepmine import SequenceClassifier
    from deepmine.data.idx import read_idx

    x, y = read_idx(folder / FILES[0]), read_idx(folder / FILES[1])
    xt, yt = read_idx(folder / FILES[2]), read_idx(folder / FILES[3])
    started = time.perf_counter()
    model = SequenceClassifier(config=str(config)).fit(x / 255.0, y)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = model.predict(xt / 255.0)
    predict_seconds = time.perf_counter() - started
    accuracy = float((predicted.astype(int) == yt.astype(int)).mean())
    return {
        "accuracy": accuracy,
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "epochs": model.predictor_.training["epochs"],
    }


def run(progress) -> dict[str, Any]:
    folder = require_files("mnist", FILES)[0].parent
    rows = {"train": 60_000, "test": 10_000}
    measured = run_measured([sys.executable, __file__, str(folder), str(CONFIG)])
    result = measured.json()
    progress(f"mnist-rows: deepmine LSTM accuracy {result['accuracy']:.4f}")
    label = "deepmine LSTM(128) via examples/mnist_rows.yaml"
    peer_measured = run_measured([sys.executable, str(BENCH_DIR / "seq_peers.py"), "lstm-mnist", str(folder)])
    peer = peer_measured.json()
    progress(f"mnist-rows: plain PyTorch LSTM accuracy {peer['accuracy']:.4f}")
    return {
        "benchmark": NAME,
        "title": TITLE,
        "rows": rows,
        "accuracy": result["accuracy"],
        "runs": [
            {
                "name": label,
                "metrics": {"accuracy": result["accuracy"]},
                "fit_seconds": round(result["fit_seconds"], 3),
                "predict_seconds": round(result["predict_seconds"], 3),
                "peak_rss_mb": measured.peak_rss_mb,
                "rows": rows,
                "details": {"epochs": result["epochs"], "process": process(measured)},
            },
            {
                "name": "plain PyTorch LSTM(128), Adam 1e-3, batch 128",
                "metrics": {"accuracy": peer["accuracy"]},
                "fit_seconds": round(peer["fit_seconds"], 3),
                "predict_seconds": round(peer["predict_seconds"], 3),
                "peak_rss_mb": peer_measured.peak_rss_mb,
                "rows": rows,
                "details": {"epochs": peer["epochs"], "process": process(peer_measured)},
            },
        ],
        "targets": [judge(label, "accuracy", result["accuracy"], ">=", ACCURACY_MIN)],
        "notes": ["mnist-rows: one thread per process (the config's trainer.threads default)."],
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(child(Path(sys.argv[1]), Path(sys.argv[2]))) + "\n")
