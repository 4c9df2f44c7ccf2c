"""Benchmark runner.

    python benchmarks/run.py NAME [--json]        run one benchmark
    python benchmarks/run.py --suite quick|full   run a suite (quick: adult, overhead; full: every benchmark)

Each run writes benchmarks/results/<name>.json and regenerates benchmarks/RESULTS.md. A readable table goes to
stderr; with --json exactly one JSON object goes to stdout. Data is read from $DEEPMINE_DATA (default
../shared/datasets next to the repository). Exit codes: 0 done (targets may still fail: see the table),
1 missing data or a failed run, 2 a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import bench_adult
import bench_chinese_sentiment
import bench_conll2003
import bench_ett
import bench_imdb
import bench_mnist
import bench_mnist_cluster
import bench_mnist_rows
import bench_movielens
import bench_odds
import bench_overhead
import bench_profile
import bench_scale
import bench_serve
import bench_ucr
import env_info
import report
from measure import CommandFailed, self_peak_rss_mb

BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        bench_adult,
        bench_overhead,
        bench_mnist,
        bench_serve,
        bench_movielens,
        bench_profile,
        bench_odds,
        bench_mnist_cluster,
        bench_scale,
        bench_ett,
        bench_ucr,
        bench_mnist_rows,
        bench_conll2003,
        bench_imdb,
        bench_chinese_sentiment,
    )
}
# the dataset's own name works too; files are named after the benchmark, never after a dataset file
ALIASES = {"chnsenticorp": "chinese-sentiment"}
SUITES: dict[str, list[str]] = {"quick": ["adult", "overhead"], "full": list(BENCHMARKS)}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_one(name: str, say: Callable[[str], None] = progress) -> dict[str, Any]:
    """Run a benchmark, add provenance, write its results file and RESULTS.md."""
    started = time.perf_counter()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    source = env_info.source_digest()
    result = BENCHMARKS[name].run(say)
    if env_info.source_digest() != source:
        note = "src/ changed while this benchmark ran: its runs may mix code versions; run it again"
        say(f"warning: {name}: {note}")
        result.setdefault("notes", []).insert(0, f"WARNING: {note}.")
    result.update(
        {
            "created": created,
            "seconds": round(time.perf_counter() - started, 1),
            "runner_peak_rss_mb": self_peak_rss_mb(),
            "git": {**env_info.git_commit(), "source_digest": source},
            "machine": env_info.machine(),
            "versions": env_info.versions(),
        }
    )
    path = report.write_result(result)
    say(f"{name}: wrote {path.relative_to(env_info.REPO_ROOT)}")
    return result


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description="Run deepmine's benchmarks.")
    parser.add_argument("name", nargs="?", help=f"benchmark to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--suite", help=f"run a suite: {', '.join(SUITES)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and suites")
    return parser.parse_args(argv)


def usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, module in BENCHMARKS.items():
            print(f"{name}: {module.TITLE}", file=sys.stderr)
        for suite, names in SUITES.items():
            print(f"suite {suite}: {', '.join(names)}", file=sys.stderr)
        return 0
    if (args.name is None) == (args.suite is None):
        return usage_error(f"name one benchmark ({', '.join(BENCHMARKS)}) or a --suite ({', '.join(SUITES)})")
    if args.suite is not None and args.suite not in SUITES:
        return usage_error(f"unknown suite '{args.suite}'; known suites: {', '.join(SUITES)}")
    if args.name is not None:
        args.name = ALIASES.get(args.name, args.name)
    if args.name is not None and args.name not in BENCHMARKS:
        return usage_error(f"unknown benchmark '{args.name}'; known benchmarks: {', '.join(BENCHMARKS)}")
    names = SUITES[args.suite] if args.suite else [args.name]
    results: dict[str, Any] = {}
    try:
        # Whatever a benchmark prints goes to stderr: stdout carries only the JSON object.
        with contextlib.redirect_stdout(sys.stderr):
            for name in names:
                results[name] = run_one(name)
                report.print_table(results[name])
    except (env_info.MissingDataError, CommandFailed) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if results:
            report.write_markdown()
    print(f"updated {report.RESULTS_MD.relative_to(env_info.REPO_ROOT)}", file=sys.stderr)
    if args.json:
        payload = results[names[0]] if args.name else {"suite": args.suite, "results": results}
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
