"""`deepmine recommend`, and what `deepmine evaluate` / `deepmine predict` do with a recommender artifact.

Registered on the Typer app in :mod:`deepmine.cli`; heavy modules are imported inside the functions so
`deepmine --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ColumnOpt = "Column name, or its position (1, 2 ...) in a headerless file; inferred when omitted."


def _cli():
    from deepmine import cli

    return cli


def _read_config(sep, encoding, no_header, table, query):
    from deepmine.config import DataConfig

    overrides = _cli()._read_overrides(sep, encoding, no_header, table, query)
    return DataConfig(**{key.split(".", 1)[1]: value for key, value in overrides.items()})


def recommend(
    data: Annotated[str, typer.Argument(help="Interaction log: CSV/TSV/'::'/pipe file, Parquet, JSONL or SQL URL.")],
    user: Annotated[str | None, typer.Option("--user", help=f"User column. {ColumnOpt}")] = None,
    item: Annotated[str | None, typer.Option("--item", help=f"Item column. {ColumnOpt}")] = None,
    rating: Annotated[
        str | None, typer.Option("--rating", help=f"Rating column ('none' = implicit feedback). {ColumnOpt}")
    ] = None,
    time: Annotated[
        str | None, typer.Option("--time", help=f"Timestamp column ('none' = no order). {ColumnOpt}")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Artifact folder to write.")] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="rating or ranking (default: rating when there is a rating column).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="auto, mf, gmf, neumf, two_tower, gru4rec, or an ensemble such as mf+neumf."),
    ] = None,
    user_features: Annotated[
        str | None, typer.Option("--user-features", help="User attribute table (first column = user id).")
    ] = None,
    item_features: Annotated[
        str | None, typer.Option("--item-features", help="Item attribute table (first column = item id).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML run config.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: key=value.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for everything.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its last checkpoint.")] = False,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI, else ./deepmine-runs)."),
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not record this run with MLflow.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    sep: Annotated[str | None, typer.Option("--sep", help="Delimiter (sniffed when omitted).")] = None,
    encoding: Annotated[str | None, typer.Option("--encoding", help="Text encoding (sniffed when omitted).")] = None,
    no_header: Annotated[bool, typer.Option("--no-header", help="The first row is data, not column names.")] = False,
    table: Annotated[str | None, typer.Option("--table", help="SQL table to read.")] = None,
    query: Annotated[str | None, typer.Option("--query", help="SQL query to read.")] = None,
) -> None:
    """Train a recommender on an interaction log (user, item, optional rating and time) and save an artifact.

    Ratings → rating prediction (RMSE/MAE on held-out ratings); no ratings or --task ranking → top-K ranking
    (HR@10/NDCG@10 on each user's held-out latest item against 99 sampled negatives).
    """
    import shutil
    from functools import partial

    from deepmine.config import parse_override
    from deepmine.data.sources import check_sql_options
    from deepmine.io_utils import check_replaceable
    from deepmine.recommender import Recommender
    from deepmine.tasks.recommend_config import build_recommend_config
    from deepmine.tracking import record_fit, tracked_fit

    check_sql_options(data, table, query)
    cli = _cli()
    overrides = cli._read_overrides(sep, encoding, no_header, table, query)
    overrides.update(dict(parse_override(entry) for entry in set_ or []))
    given = {"columns.user": user, "columns.item": item, "columns.rating": rating, "columns.time": time}
    given.update({"task": task, "model.name": model, "seed": seed, "tracking.uri": tracking_uri})
    given.update({"tracking.enabled": False} if no_track else {})
    overrides.update({k: v for k, v in given.items() if v is not None})
    run = build_recommend_config(config, overrides)
    if out is None:
        out = Path(f"{Path(data).name.split('.')[0] if '://' not in data else run.data.table or 'query'}-recommender")
    check_replaceable(out)  # before training: minutes of work must not end in a refused save
    checkpoint_dir = out.parent / f".{out.name}.checkpoint"
    if not resume and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    rec = Recommender(config=run, model=run.model.name, task=run.task, seed=run.seed)
    sides = {"user_features": user_features, "item_features": item_features}
    _, tracker = tracked_fit(run, partial(rec.fit, data, **sides, checkpoint_dir=checkpoint_dir, resume=resume))
    rec.save(out)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    state = rec.fitted_
    metrics = {k: v for k, v in state.metrics["valid"].items() if k != "rows"}
    summary: dict[str, Any] = {
        "artifact": str(out),
        "kind": "recommender",
        "task": state.task,
        "model": state.config.model.name,
        "columns": {"user": state.roles.user, "item": state.roles.item, "rating": state.roles.rating,
                    "time": state.roles.time},
        "split": "valid",
        **{k: state.training[k] for k in ("users", "items", "interactions", "rows", "valid_rows", "epochs", "seconds")},
        **metrics,
        **record_fit(tracker, state, data, out),
    }  # fmt: skip
    if json_out:
        cli._emit_json(summary)
        return
    console = cli._stderr()
    roles = summary["columns"]
    console.print(
        f"columns: user '{roles['user']}', item '{roles['item']}', rating {roles['rating']!r}, time {roles['time']!r}"
    )
    console.print(cli._metrics_table(f"validation metrics ({state.task}, model {summary['model']})", metrics))
    console.print(
        f"trained on {summary['interactions']} interactions ({summary['users']} users, {summary['items']} items) "
        f"in {summary['seconds']:.1f} s; artifact written to [bold]{out}[/]"
    )


def evaluate_recommender(artifact: Path, data: str, json_out: bool, sep, encoding, no_header, table, query) -> None:
    from deepmine.data.sources import describe
    from deepmine.recommender import Recommender

    cli = _cli()
    rec = Recommender.load(artifact)
    metrics = rec.evaluate(data, _read_config(sep, encoding, no_header, table, query))
    if json_out:
        cli._emit_json(metrics)
        return
    shown = f"test metrics on {describe(data)} ({metrics['rows']} rows, {rec.task_})"
    cli._stderr().print(cli._metrics_table(shown, metrics))
    counts = ", ".join(
        f"{k} {metrics[k]}" for k in ("unknown_users", "unknown_items", "ratings_outside_range") if k in metrics
    )
    cli._stderr().print(counts)


def parse_users(text: str) -> list[str]:
    from deepmine.exceptions import ConfigError

    users = [part.strip() for part in text.split(",") if part.strip()]
    if not users:
        raise ConfigError(f"--users expects a comma-separated list of user ids such as 1,2,3; got {text!r}")
    return users


def predict_recommender(
    artifact: Path,
    data: str | None,
    users: str | None,
    k: int,
    output: Path | None,
    sep,
    encoding,
    no_header,
    table,
    query,
) -> None:
    """--users: top-k per user; DATA with user and item columns: a score per row; DATA with users only: top-k."""
    from deepmine.batch import write_predictions
    from deepmine.exceptions import ConfigError
    from deepmine.recommender import Recommender

    rec = Recommender.load(artifact)
    if users is None and data is None:
        raise ConfigError("name the users with --users 1,2,3 (or pass DATA with user and item columns)")
    if users is not None:
        ids: list[object] = parse_users(users)
        if rec.vocabulary_.user_int:
            ids = [int(u) if u.lstrip("-").isdigit() else u for u in ids]
        frame = rec.recommend(ids, k, where="--users")
    else:
        frame = rec.predict_frame(data, _read_config(sep, encoding, no_header, table, query), k)
    rows = write_predictions(iter([frame]), output)
    if output is not None:
        _cli()._stderr().print(f"wrote {rows} rows to [bold]{output}[/]")
