"""scale: streaming `deepmine fit` at 10^5, 10^6 and 10^7 rows — seconds per epoch and peak RSS.

The tables are rows of UCI Adult's training file sampled WITH REPLACEMENT (seeded) to each size, written once to
Parquet under benchmarks/work/scale/ in slices of 10^6 rows (never 10^7 rows in memory). Each size is one
`deepmine fit … --set data.streaming=true` in its own process (peak RSS is that process's), one epoch.
Per-epoch seconds come from the artifact's training history (the epoch alone: reading, preprocessing and
training on every chunk, plus the validation pass); the fit seconds (sample, preprocessing fit, row count,
the epoch, scoring) are reported too. Targets (issue 8): 10^7 rows peak RSS ≤ 3 GB (3072 MiB) and
seconds per epoch ≤ 1.2 × 10 × the 10^6 figure.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import adult_data
from env_info import WORK_DIR
from measure import deepmine_cli, process, run_measured
from targets import judge

NAME = "scale"
TITLE = "Streaming fit at 10^5/10^6/10^7 rows (Adult rows sampled with replacement): s/epoch and peak RSS"
SIZES = (100_000, 1_000_000, 10_000_000)
SLICE = 1_000_000
ROW_GROUP = 65_536
SEED = 0
RSS_MAX_MB = 3 * 1024
SCALING_MAX = 1.2
SETTINGS = [
    "--set",
    "data.streaming=true",
    "--set",
    "trainer.epochs=1",
    "--set",
    "trainer.batch_size=4096",
    "--set",
    "model.ensemble=1",
    "--set",
    "model.hidden=[64]",
    "--set",
    "model.numeric_embedding=0",
    "--set",
    "data.chunk_rows=131072",
]


def parquet_path(rows: int) -> Path:
    return WORK_DIR / "scale" / f"adult-{rows}.parquet"


def write_sampled(rows: int, say) -> Path:
    """``rows`` Adult rows drawn with replacement, written slice by slice (only once)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = parquet_path(rows)
    if path.exists():
        return path
    files = adult_data.prepare()
    base = pd.read_csv(files.train_csv, keep_default_na=False, na_values=[""])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    rng = np.random.default_rng(SEED + rows)
    schema = pa.Schema.from_pandas(base, preserve_index=False)
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, rows, SLICE):
            n = min(SLICE, rows - start)
            part = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False), ROW_GROUP)
    tmp.replace(path)
    say(f"scale: wrote {path.name} ({rows:,} rows, {path.stat().st_size / 2**20:.0f} MiB)")
    return path


def fit_once(rows: int, say) -> dict[str, Any]:
    data = write_sampled(rows, say)
    with tempfile.TemporaryDirectory(prefix="deepmine-scale-") as tmp:
        out = Path(tmp) / "model"
        command = [
            *deepmine_cli(),
            "fit",
            str(data),
            "--target",
            adult_data.TARGET,
            "--out",
            str(out),
            "--no-report",
            "--no-track",
            "--json",
            *SETTINGS,
        ]
        env = {**os.environ}
        say(f"scale: fitting {rows:,} rows (streaming, 1 epoch)")
        measured = run_measured(command, env=env)
        summary = measured.json()
        manifest = json.loads((out / "deepmine.json").read_text())
    history = manifest.get("history") or []
    return {
        "name": f"{rows:,} rows",
        "metrics": {k: summary[k] for k in ("accuracy", "roc_auc") if k in summary},
        "fit_seconds": summary["seconds"],
        "epoch_seconds": round(history[0]["seconds"], 3) if history else None,
        "peak_rss_mb": measured.peak_rss_mb,
        "rows": {"train": summary["rows"]},
        "valid_rows": summary["valid_rows"],
        "process": process(measured),
    }


def run(progress, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    runs = [fit_once(rows, progress) for rows in sizes]
    for r in runs:
        progress(f"scale: {r['name']}: {r['epoch_seconds']} s/epoch, peak RSS {r['peak_rss_mb']} MiB")
    by_rows = dict(zip(sizes, runs, strict=True))
    targets = []
    if 10_000_000 in by_rows:
        big = by_rows[10_000_000]
        targets.append(judge(big["name"], "peak RSS", big["peak_rss_mb"], "<=", RSS_MAX_MB, " MiB"))
        if 1_000_000 in by_rows:
            bound = SCALING_MAX * 10 * by_rows[1_000_000]["epoch_seconds"]
            targets.append(
                judge(
                    big["name"],
                    "s/epoch (≤ 1.2 × 10 × the 10^6 figure)",
                    big["epoch_seconds"],
                    "<=",
                    round(bound, 1),
                    " s",
                )
            )
    cpu = {r["name"]: r["process"]["cpu_seconds"] for r in runs}
    return {
        "cpu_seconds_per_fit": cpu,  # a check on the wall figures when the machine is shared
        "benchmark": NAME,
        "title": TITLE,
        "rows": {"train": max(sizes)},
        "settings": {
            "cli": " ".join(SETTINGS),
            "row_group": ROW_GROUP,
            "sampling": "Adult train rows with replacement, seed 0 + rows",
        },
        "runs": runs,
        "targets": targets,
        "notes": [
            "Rows are UCI Adult training rows sampled with replacement to each size (so they repeat); "
            "quality figures are on a validation split of the first 200,000 rows and are not Adult test scores.",
            "One epoch per size; s/epoch is the epoch in the training history (read + preprocess + train + "
            "validate); fit s adds the sample, preprocessing fit, row count and scoring. "
            "Peak RSS is the fit process's.",
            "Settings: batch 4096, one network (model.ensemble=1) with one hidden layer of 64 and raw numeric features "
            "(model.numeric_embedding=0), 131,072-row chunks; the figures are about scaling, not accuracy.",
        ],
    }


if __name__ == "__main__":
    sizes = tuple(int(s) for s in sys.argv[1:]) or SIZES
    print(json.dumps(run(lambda m: print(m, file=sys.stderr, flush=True), sizes), indent=2))
