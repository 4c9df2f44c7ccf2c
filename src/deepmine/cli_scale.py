"""`deepmine runs` (MLflow run listing) and `deepmine tune` (Optuna search).

Registered on the Typer app in :mod:`deepmine.cli`; heavy modules are imported inside the functions so
`deepmine --help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def _cli():
    from deepmine import cli

    return cli


def runs(
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI, else ./deepmine-runs)."),
    ] = None,
    experiment: Annotated[str, typer.Option("--experiment", help="MLflow experiment.")] = "deepmine",
    limit: Annotated[int, typer.Option("--limit", help="Newest runs shown.", min=1, max=50000)] = 50,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort", help="Show the --limit best runs by this final metric (best first), e.g. roc_auc or rmse."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """List and compare the recorded fits (newest first): data, target, task, epochs, time and final metrics.
    `mlflow ui --backend-store-uri sqlite:///deepmine-runs/mlflow.db` browses the same store."""
    from deepmine.tracking import list_runs

    result = list_runs(tracking_uri, experiment, limit, sort)
    found = result["runs"]
    if sort is not None and not found:
        recorded = sorted({m for r in list_runs(tracking_uri, experiment, 200)["runs"] for m in r["metrics"]})
        if recorded:
            from deepmine.exceptions import ConfigError, did_you_mean

            raise ConfigError(
                f"no run in '{experiment}' has the metric '{sort}'{did_you_mean(sort, recorded)}; recorded: {recorded}"
            )
    if json_out:
        _cli()._emit_json(result)
        return
    from rich.console import Console

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    if not found:
        console.print(f"no runs in experiment '{experiment}' at {result['tracking_uri']}")
        return
    from datetime import datetime

    from rich.table import Table

    from deepmine.tracking import LEAD_METRICS

    present = [m for m in LEAD_METRICS if any(m in r["metrics"] for r in found)]
    view = Table(title=f"{len(found)} run(s) in '{experiment}' at {result['tracking_uri']}")
    headings = ("run", "started", "status", "data", "target", "task", "hidden", "lr", "epochs", "seconds", *present)
    for heading in headings:
        view.add_column(heading, justify="right" if heading in ("epochs", "seconds", *present) else "left")
    for run in found:
        started = datetime.fromtimestamp(run["start_time"] / 1000).strftime("%m-%d %H:%M:%S")
        cells = [
            run["run_id"][:8],
            started,
            run["status"].lower(),
            Path(run["source"]).name if run["source"] else "",
            run["target"],
            run["task"],
            run["params"].get("model.hidden", ""),
            run["params"].get("optimizer.lr", ""),
            "" if run["epochs"] is None else f"{run['epochs']:.0f}",
            "" if run["seconds"] is None else f"{run['seconds']:.1f}",
        ]
        cells += [f"{run['metrics'][m]:.4f}" if m in run["metrics"] else "" for m in present]
        view.add_row(*cells)
    console.print(view)


def tune(
    data: Annotated[str, typer.Argument(help="A CSV/TSV/Parquet/JSONL file or a SQLAlchemy URL.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column to predict.")] = None,
    trials: Annotated[int, typer.Option("--trials", help="Trials in all (shared by the workers).", min=1)] = 20,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Stop starting new trials after this many seconds.", min=1)
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes on this machine, all on one study.", min=1)
    ] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage", help="Optuna storage URL (default sqlite:///deepmine-runs/optuna.db; postgresql://… to share)."
        ),
    ] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default DATA-TARGET).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for best.yaml and the retrained artifact (model/).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML run config (the base of every trial).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: key=value.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for everything.")] = None,
    no_retrain: Annotated[
        bool, typer.Option("--no-retrain", help="Only search; do not retrain the best config.")
    ] = False,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow store for the retrained run (default ./deepmine-runs).")
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not record the retrained run with MLflow.")] = False,
    worker_only: Annotated[bool, typer.Option("--worker-only", hidden=True)] = False,
    seed_offset: Annotated[int, typer.Option("--seed-offset", hidden=True)] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Search hyperparameters with Optuna (layer sizes, learning rate, dropout, weight decay, optimizer, numeric
    encoder), pruning weak trials epoch by epoch on the validation split; write the best config as YAML and
    retrain it into an artifact. Several machines share a study with --storage postgresql://… and --study."""
    from deepmine.config import build_config, parse_override
    from deepmine.tune import run_tune

    overrides = dict(parse_override(item) for item in set_ or [])
    if target is not None:
        overrides["columns.target"] = target
    if seed is not None:
        overrides["seed"] = seed
    if no_track:
        overrides["tracking.enabled"] = False
    if tracking_uri is not None:
        overrides["tracking.uri"] = tracking_uri
    base = build_config(config, overrides)
    result = run_tune(
        data,
        base,
        trials=trials,
        timeout=timeout,
        workers=workers,
        storage=storage,
        study_name=study,
        out=out,
        retrain=not (no_retrain or worker_only),
        worker_only=worker_only,
        worker_index=seed_offset,
        console=_cli()._stderr(),
    )
    if json_out:
        _cli()._emit_json(result)
        return
    if worker_only:
        return
    print(
        f"best trial {result['best_trial']} of {result['trials']} ({result['metric']} {result['best_value']:.4f}); "
        f"best config in {result['best_config']}"
        + (f"; artifact in {result['artifact']}" if result.get("artifact") else ""),
        file=sys.stderr,
    )
