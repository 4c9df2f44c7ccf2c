"""The `deepmine` command line (Typer). Heavy modules are imported inside commands so --help is instant.

Exit codes: 0 success, 1 a problem with the data or the artifact, 2 a usage error.
With --json a command prints exactly one JSON object on stdout; people's output goes to stderr.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from deepmine.cli_options import (
    DataArg,
    EncodingOpt,
    JsonOpt,
    NoHeaderOpt,
    QueryOpt,
    SepOpt,
    TableOpt,
    flags_without_type,
)

flags_without_type()
app = typer.Typer(
    name="deepmine",
    help="Deep learning for data mining: profile, fit, evaluate and predict from a table in one command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEBUG = {"on": False}
WORKER_ERROR_DELAY = 3.0  # seconds a worker of rank > 0 waits before reporting a mistake (see main)
PROFILE_SECTIONS = ("columns", "data", "task")  # the config keys `deepmine profile --set` uses
FIT_TASKS = ("auto", "binary", "multiclass", "regression", "multilabel", "sequence", "tagging")  # schema.TASKS + 2
ARGV: list[str] = []  # the arguments main() received (``fit --devices N`` relaunches them under torchrun)

# ---- shared options (the common ones live in cli_options) ----------------------------------------

StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Images: stop at the first unreadable image instead of skipping it.")
]


def _read_overrides(sep, encoding, no_header, table, query) -> dict[str, Any]:
    pairs = {"data.sep": sep, "data.encoding": encoding, "data.table": table, "data.query": query}
    out = {k: v for k, v in pairs.items() if v is not None}
    if sep is not None:
        out["data.sep"] = sep.encode().decode("unicode_escape")  # lets users type --sep '\t'
    if no_header:
        out["data.header"] = False
    return out


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


SHOWN_WARNINGS: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """deepmine's warnings as one ``warning:`` line each, and each text once per command (the same check can run
    on the same rows twice, e.g. once for the baseline of an explanation)."""
    from deepmine.exceptions import DeepmineWarning

    if (issubclass(category, DeepmineWarning) or DEBUG["on"]) and str(message) not in SHOWN_WARNINGS:
        SHOWN_WARNINGS.add(str(message))
        print(f"warning: {message}", file=sys.stderr)


def _emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def _metrics_table(title: str, metrics: dict[str, Any]):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
    return table


# ---- commands -----------------------------------------------------------------------------------
@app.command()
def profile(
    data: DataArg,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Target column (shows its balance).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A column setting as fit takes it, key=value: columns.weight=COL lists COL with role weight (row "
            "weights, not a feature); also columns.id, columns.roles.NAME, columns.drop, task and data.* keys.",
        ),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the profile as one self-contained HTML page.")
    ] = None,
    json_out: JsonOpt = False,
    sep: SepOpt = None,
    encoding: EncodingOpt = None,
    no_header: NoHeaderOpt = False,
    table: TableOpt = None,
    query: QueryOpt = None,
) -> None:
    """Show each column's role and why, missing share, distinct count, statistics and the target balance.

    Name columns as fit does (--set columns.weight=COL, columns.id, columns.roles.NAME=ROLE) to see the roles the
    fit will use: the weight column is listed with role "weight"."""
    from deepmine.config import build_config, parse_override
    from deepmine.data.sources import check_sql_options
    from deepmine.exceptions import ConfigError
    from deepmine.profile import profile_table

    check_sql_options(data, table, query)
    overrides = _read_overrides(sep, encoding, no_header, table, query)
    for key, value in (parse_override(item) for item in set_ or []):
        if key.split(".")[0] not in PROFILE_SECTIONS:
            raise ConfigError(
                f"--set {key}: profile takes only the columns.*, data.* and task settings (how columns are read and "
                f"their roles); pass {key} to fit"
            )
        overrides[key] = value
    if target is not None:
        overrides["columns.target"] = target
    config = build_config(None, overrides, command="profile")
    result = profile_table(
        data,
        config.columns.target,
        config.data,
        detail=html is not None,
        columns=config.columns,
        task=config.task,
    )
    if html is not None:
        from deepmine.report.build import render_profile, write_text_atomic

        write_text_atomic(html, render_profile(result))
        print(f"profile written to {html}", file=sys.stderr)
        result.pop("distributions", None)  # the JSON contract stays as without --html
    if json_out:
        _emit_json(result)
        return
    from rich.table import Table

    from deepmine.data.schema import shorten

    view = Table(title=f"{result['source']}: {result['rows']} rows × {len(result['columns'])} columns")
    for heading in ("column", "role", "why", "missing", "distinct"):
        view.add_column(heading)
    view.add_column("statistics", overflow="fold")  # a long integer wraps rather than losing digits to "…"
    for col in result["columns"]:
        stats = col["stats"]
        shown = (
            ", ".join(
                f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4g}"  # integers exactly, however large
                for k, v in stats.items()
                if isinstance(v, int | float) and k != "50%"
            )
            if "top" not in stats
            else ", ".join(f"{shorten(k)} ({v})" for k, v in list(stats["top"].items())[:3])
        )
        view.add_row(
            col["name"], col["role"], col["reason"], f"{col['missing_share']:.1%}", str(col["distinct"]), shown
        )
    console = _stderr()
    console.print(view)
    if "target" in result:
        info = result["target"]
        console.print(f"target [bold]{info['name']}[/]: {info['task']} ({info['reason']})")
        if "balance" in info:
            console.print("balance: " + ", ".join(f"{k} {v:.1%}" for k, v in info["balance"].items()))


@app.command()
def fit(
    data: DataArg,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column to predict.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Artifact folder to write.")] = None,
    valid: Annotated[str | None, typer.Option("--valid", help="Validation file (else carved from DATA).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML run config.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: key=value.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for everything.")] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="binary, multiclass, multilabel (label lists like 'a|b'), regression, sequence (wide rows: one "
            "series per row), or tagging (CoNLL/JSONL).",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its last checkpoint.")] = False,
    no_report: Annotated[
        bool,
        typer.Option(
            "--no-report",
            help="Skip report.html and the report data it is drawn from (same as --set report.enabled=false): "
            "a later `deepmine report` then has no profile, importance or examples.",
        ),
    ] = False,
    devices: Annotated[
        int, typer.Option("--devices", help="Data-parallel processes on this machine (runs torchrun).", min=1)
    ] = 1,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI, else ./deepmine-runs)."),
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not record this run with MLflow.")] = False,
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
    sep: SepOpt = None,
    encoding: EncodingOpt = None,
    no_header: NoHeaderOpt = False,
    table: TableOpt = None,
    query: QueryOpt = None,
) -> None:
    """Train a model on DATA to predict --target, score it on validation data, and save an artifact
    (with report.html, the HTML report, unless --no-report). Every fit is recorded with MLflow (`deepmine runs`)."""
    from deepmine.data.sources import check_sql_options, is_sql_url

    check_sql_options(data, table, query)
    if devices > 1:
        from deepmine.train.distributed import launch

        raise typer.Exit(launch(devices, ARGV))  # main() exits with the workers' code
    import shutil
    import time

    from deepmine.config import build_config, parse_override
    from deepmine.io_utils import check_replaceable
    from deepmine.tasks.supervised import fit_table

    if out is not None:
        check_replaceable(out)  # before training: minutes of work must not end in a refused save
    overrides = _read_overrides(sep, encoding, no_header, table, query)
    overrides.update(dict(parse_override(item) for item in set_ or []))
    if target is not None:
        overrides["columns.target"] = target
    elif config is None and "columns.target" not in overrides:
        from deepmine.text.folders import LABEL_COLUMN, is_text_folder

        if is_text_folder(data):  # class folders of .txt files: the folder name is the label
            overrides["columns.target"] = LABEL_COLUMN
    if seed is not None:
        overrides["seed"] = seed
    if task is not None:
        from deepmine.exceptions import ConfigError, did_you_mean

        if task not in FIT_TASKS:
            raise ConfigError(
                f"unknown --task '{task}'{did_you_mean(task, FIT_TASKS)}; choose from {', '.join(FIT_TASKS)}"
            )
        overrides["task"] = task
    if no_report:
        overrides["report.enabled"] = False
    if no_track:
        overrides["tracking.enabled"] = False
    if tracking_uri is not None:
        overrides["tracking.uri"] = tracking_uri
    if task == "sequence":  # wide rows: one series per row (UCR style)
        from deepmine.cli_sequence import fit_command as fit_sequence_command

        overrides.pop("report.enabled", None)
        fit_sequence_command(data, out, overrides, config, json_out)
        return
    if task == "tagging":  # CoNLL/JSONL tagged sentences: a BiLSTM-CRF tagger
        from deepmine.cli_tagging import fit_command as fit_tagging_command

        fit_tagging_command(data, out, overrides, config, valid, json_out)
        return
    from deepmine.images.sources import is_image_source

    if is_image_source(data, overrides.get("images.path_column")):  # image folder, IDX/NPZ, table of image paths
        from deepmine.images.cli import fit_command

        overrides.update({"images.strict": True} if strict else {})
        fit_command(data, out=out, overrides=overrides, config=config, valid=valid, resume=resume, json_out=json_out)
        return
    run = build_config(config, overrides)
    if out is None:
        stem = (run.data.table or "query") if is_sql_url(data) else Path(data).name.split(".")[0]
        out = Path(f"{stem}-model")
        check_replaceable(out)
    from deepmine import tracking

    main_process = tracking.is_main_process()
    checkpoint_dir = out.parent / f".{out.name}.checkpoint"
    if not resume and checkpoint_dir.exists() and main_process:
        shutil.rmtree(checkpoint_dir)
    predictor, tracker = tracking.tracked_fit(
        run, lambda: fit_table(data, run, valid=valid, checkpoint_dir=checkpoint_dir, resume=resume)
    )
    if not main_process:
        return  # in distributed training only rank 0 writes the artifact, the run and the output
    saving = time.perf_counter()
    predictor.save(out, report=run.report.enabled)
    report_seconds = round(time.perf_counter() - saving, 3)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    metrics = {k: v for k, v in predictor.metrics["valid"].items() if k != "rows"}
    summary = {
        "artifact": str(out),
        "task": predictor.task,
        "target": predictor.schema.target,
        "split": "valid",
        "rows": predictor.training["rows"],
        "valid_rows": predictor.training["valid_rows"],
        "epochs": predictor.training["epochs"],
        "seconds": predictor.training["seconds"],
        "report": str(out / "report.html") if run.report.enabled else None,
        "save_seconds": report_seconds,
        **{k: v for k, v in predictor.training.items() if k in ("positive_share", "headline_metric", "threshold")},
        **metrics,
    }
    for column in predictor.training.get("text_columns", {}).values():  # the tokenizer chosen per text column
        _stderr().print(column["line"], markup=False, highlight=False, soft_wrap=True)
    if "trees" in predictor.training:
        from deepmine.tasks.tree_member import describe_trees

        trees = predictor.training["trees"]
        summary["trees"] = {k: v for k, v in trees.items() if k != "valid_loss_by_weight"}
        _stderr().print(describe_trees(trees), markup=False, highlight=False, soft_wrap=True)
    summary.update(tracking.record_fit(tracker, predictor, str(data), out))
    if json_out:
        _emit_json(summary)
        return
    console = _stderr()
    console.print(_metrics_table(f"validation metrics ({predictor.task}, target '{predictor.schema.target}')", metrics))
    if "headline_metric" in summary:
        console.print(
            f"the positive class is rare ({summary['positive_share']:.2%} of training rows): "
            f"judge the model by average_precision ({metrics.get('average_precision', float('nan')):.4f})"
        )
    console.print(
        f"trained {summary['epochs']} epoch{'' if summary['epochs'] == 1 else 's'} on {summary['rows']} rows in "
        f"{summary['seconds']:.1f} s; "
        f"artifact written to [bold]{out}[/]"
    )


@app.command()
def evaluate(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `deepmine fit`.")],
    data: DataArg,
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
    sep: SepOpt = None,
    encoding: EncodingOpt = None,
    no_header: NoHeaderOpt = False,
    table: TableOpt = None,
    query: QueryOpt = None,
) -> None:
    """Score a saved model on a labelled test file (a recommender: on held-out interactions)."""
    from deepmine.data.sources import check_sql_options

    check_sql_options(data, table, query)
    if _is_image(artifact):
        from deepmine.images.cli import evaluate_command

        evaluate_command(artifact, data, json_out, strict)
        return
    if _kind(artifact) == "tagger":
        from deepmine.cli_tagging import evaluate_command as evaluate_tagger

        evaluate_tagger(artifact, data, json_out)
        return
    if _kind(artifact) == "forecaster":
        from deepmine.cli_forecast import evaluate_command as evaluate_forecast

        evaluate_forecast(artifact, data, json_out)
        return
    if _kind(artifact) == "sequence":
        from deepmine.cli_sequence import evaluate_command as evaluate_sequence

        evaluate_sequence(artifact, data, json_out, _data_config(sep, encoding, no_header, table, query))
        return
    if _is_recommender(artifact):
        from deepmine.cli_recommend import evaluate_recommender

        evaluate_recommender(artifact, data, json_out, sep, encoding, no_header, table, query)
        return
    predictor = _load_for_data(artifact, sep, encoding, no_header, table, query)
    metrics = predictor.evaluate(data)
    if json_out:
        _emit_json(metrics)
        return
    from deepmine.data.sources import describe

    console = _stderr()
    console.print(_metrics_table(f"test metrics on {describe(data)} ({metrics['rows']} rows)", metrics))
    if "confusion_matrix" in metrics:
        console.print(
            f"confusion matrix (rows true {predictor.schema.classes}, columns predicted): {metrics['confusion_matrix']}"
        )


@app.command()
def predict(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `deepmine fit`.")],
    data: Annotated[
        str | None,
        typer.Argument(help="Rows to predict: a CSV/TSV/Parquet/JSONL file or a SQL URL (optional for recommenders)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write predictions here (CSV, TSV, Parquet or JSONL); stdout when omitted."
        ),
    ] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="Column to copy into the predictions.")] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", help="CSV/TSV inputs are read and predicted this many rows at a time.")
    ] = 50_000,
    users: Annotated[
        str | None, typer.Option("--users", help="Recommender: top-K items for these users (comma-separated ids).")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Recommender: items per user.", min=1)] = 10,
    strict: StrictOpt = False,
    text_column: Annotated[
        str | None,
        typer.Option("--column", help="Tagging: the table column holding the sentences (default: its text column)."),
    ] = None,
    sep: SepOpt = None,
    encoding: EncodingOpt = None,
    no_header: NoHeaderOpt = False,
    table: TableOpt = None,
    query: QueryOpt = None,
) -> None:
    """Predict every row of DATA: one output row per input row, in input order (large CSVs stream in chunks).

    For a recommender artifact: `--users 1,2,3 --k 10` lists each user's top items with scores."""
    from deepmine.batch import check_prediction_output
    from deepmine.data.sources import check_sql_options

    check_sql_options(data, table, query)
    check_prediction_output(output, data, tables=_kind(artifact) != "tagger")
    if _kind(artifact) == "tagger" and data is not None:
        from deepmine.cli_tagging import predict_command as predict_tagger

        predict_tagger(
            artifact, data, output, id_column, text_column, _data_config(sep, encoding, no_header, table, query)
        )
        return
    if text_column is not None:
        from deepmine.exceptions import ConfigError

        raise ConfigError("--column applies to tagging models, which tag one column of a table; this model reads rows")
    if _kind(artifact) == "forecaster" and data is not None:
        from deepmine.cli_forecast import predict_command as predict_forecast

        predict_forecast(artifact, data, output)
        return
    if _kind(artifact) == "sequence" and data is not None:
        from deepmine.cli_sequence import predict_command as predict_sequence

        predict_sequence(artifact, data, output, _data_config(sep, encoding, no_header, table, query))
        return
    if _is_recommender(artifact):
        from deepmine.cli_recommend import predict_recommender

        predict_recommender(artifact, data, users, k, output, sep, encoding, no_header, table, query)
        return
    if _is_image(artifact) and data is not None:
        from deepmine.images.cli import predict_command

        predict_command(artifact, data, output, id_column, strict)
        return
    if data is None:
        from deepmine.exceptions import ConfigError

        raise ConfigError("predict needs DATA, the rows to predict (only recommender artifacts take --users alone)")
    from deepmine.batch import predict_to

    predictor = _load_for_data(artifact, sep, encoding, no_header, table, query)
    rows = predict_to(predictor, data, output, id_column, chunk_rows, console=_stderr())
    if output is not None:
        _stderr().print(f"wrote {rows} predictions to [bold]{output}[/]")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's data and artifact.")] = Path(
        "deepmine-demo"
    ),
    json_out: JsonOpt = False,
) -> None:
    """Profile → fit → evaluate → predict on scikit-learn's bundled breast-cancer table (no network)."""
    from deepmine.demo import run_demo

    result = run_demo(out, console=_stderr())
    if json_out:
        _emit_json(result)


@app.command()
def serve(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `deepmine fit`.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes, each with the model.", min=1)] = 1,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="DEEPMINE_API_KEY",
            show_envvar=True,
            help="Require this key in an X-API-Key header on /predict and /metadata.",
        ),
    ] = None,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Largest request body accepted, in MiB (413 above).", min=0.001)
    ] = 10.0,
    threads: Annotated[
        int, typer.Option("--threads", help="Torch threads per worker (1 is fastest for small requests).", min=1)
    ] = 1,
) -> None:
    """Serve ARTIFACT over HTTP: POST /predict (JSON records or CSV; image files or base64 images for an image
    model), GET /health, GET /metadata, docs at /docs."""
    from deepmine.serve.server import serve as run_server

    _require_table_or_image(artifact, "serve")

    def announce() -> None:
        print(
            f"loaded {artifact}; serving on http://{host}:{port} (docs at /docs, {workers} worker(s)"
            f"{', API key required' if api_key else ''}); Ctrl-C stops",
            file=sys.stderr,
        )

    run_server(
        artifact,
        host=host,
        port=port,
        workers=workers,
        api_key=api_key,
        max_body_bytes=int(max_body_mb * 2**20),
        threads=threads,
        on_ready=announce,
    )


@app.command()
def export(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `deepmine fit`.")],
    format_: Annotated[str, typer.Option("--format", "-f", help="onnx or torchscript.")] = "onnx",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: ARTIFACT.onnx / ARTIFACT.pt).")
    ] = None,
    check: Annotated[
        str | None,
        typer.Option(
            "--check",
            help="Raw rows (images for an image model) to verify the export on (else generated ones).",
        ),
    ] = None,
    rows: Annotated[int, typer.Option("--rows", help="How many rows (images: at most 64) to verify on.", min=1)] = 1000,
    json_out: JsonOpt = False,
    sep: SepOpt = None,
    encoding: EncodingOpt = None,
    no_header: NoHeaderOpt = False,
    table: TableOpt = None,
    query: QueryOpt = None,
) -> None:
    """Export the whole pipeline (numeric preprocessing + model + softmax) as one ONNX or TorchScript graph,
    with a JSON sidecar holding the categorical vocabularies; verified against the predictor first. An image
    model exports as pixels (uint8, resized to the artifact's size) → normalisation → network → softmax."""
    from deepmine.data.sources import check_sql_options
    from deepmine.export import default_path, export_predictor

    check_sql_options(check, table, query)  # the rows read are --check's
    _require_table_or_image(artifact, "export")
    path = output if output is not None else default_path(artifact, format_)
    if _is_image(artifact):
        from deepmine.export.images import IMAGE_CHECK_ROWS, export_image_predictor
        from deepmine.images.predictor import ImagePredictor

        predictor = ImagePredictor.load_artifact(artifact)
        result = export_image_predictor(predictor, path, format_, sample=check, rows=min(rows, IMAGE_CHECK_ROWS))
    else:
        predictor = _load_for_data(artifact, sep, encoding, no_header, table, query)
        result = export_predictor(predictor, path, format_, sample=check, rows=rows)
    if json_out:
        _emit_json(result.to_dict())
        return
    _stderr().print(
        f"exported {result.format} graph to [bold]{result.path}[/] (inputs and usage in {result.sidecar.name}); "
        f"checked on {result.sample}: max abs diff {result.max_abs_diff:.3g} ≤ {result.tolerance:.3g}",
        highlight=False,
        soft_wrap=True,
    )


def _require_table_or_image(artifact: Path, command: str, image: bool = True) -> None:
    """A one-line error naming the artifact's kind when ``command`` (export, report, serve: table and image models
    only; explain, ``image=False``: table models only) is given another kind; unreadable artifacts are left to the
    loader's own message."""
    from deepmine.exceptions import ArtifactError

    kind = _kind(artifact)
    if kind and kind not in (("tabular", "image") if image else ("tabular",)):
        article = "an" if kind[:1] in "aeiou" else "a"
        raise ArtifactError(
            f"artifact '{artifact}' is {article} {kind} model; `deepmine {command}` supports table "
            f"{'and image models' if image else 'models'} only (`deepmine predict` and `deepmine evaluate` take "
            "every kind)"
        )


def _kind(artifact: Path) -> str:
    """The artifact's ``kind`` from its deepmine.json (read without heavy imports); "" when unreadable."""
    try:
        return str(json.loads((Path(artifact) / "deepmine.json").read_text(encoding="utf-8")).get("kind") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def _data_config(sep, encoding, no_header, table, query):
    from deepmine.config import DataConfig

    read = _read_overrides(sep, encoding, no_header, table, query)
    return DataConfig(**{key.split(".")[1]: value for key, value in read.items()})


def _is_recommender(artifact: Path) -> bool:
    """Whether the artifact's deepmine.json says ``"kind": "recommender"`` (read without heavy imports)."""
    try:
        return json.loads((Path(artifact) / "deepmine.json").read_text(encoding="utf-8")).get("kind") == "recommender"
    except (OSError, ValueError, AttributeError):
        return False


def _is_image(artifact: Path) -> bool:
    """Whether the artifact is an image classifier (``"kind": "image"``)."""
    from deepmine.images.cli import is_image_artifact

    return is_image_artifact(artifact)


def _register_recommend() -> None:
    from deepmine.cli_recommend import recommend

    app.command(name="recommend")(recommend)


_register_recommend()


def _register_forecast() -> None:
    from deepmine.cli_forecast import forecast

    app.command(name="forecast")(forecast)


_register_forecast()


def _register_unsupervised() -> None:
    from deepmine.cli_unsupervised import anomalies, cluster

    app.command(name="anomalies")(anomalies)
    app.command(name="cluster")(cluster)


_register_unsupervised()


def _register_scale() -> None:
    from deepmine.cli_scale import runs, tune

    app.command(name="tune")(tune)
    app.command(name="runs")(runs)


_register_scale()


def _register_vectors() -> None:
    from deepmine.cli_vectors import embed, neighbors

    app.command(name="embed")(embed)
    app.command(name="neighbors")(neighbors)


_register_vectors()


@app.command()
def report(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `deepmine fit`.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file to write (default: ARTIFACT/report.html).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the HTML report of ARTIFACT: data profile, preprocessing, model, learning curves, metrics,
    confusion matrix, ROC/PR, calibration, residuals, feature importance, explained examples, model card."""
    _require_table_or_image(artifact, "report")
    path = output if output is not None else artifact / "report.html"
    if _is_image(artifact):
        from deepmine.images.predictor import ImagePredictor
        from deepmine.report.images import write_image_report

        result = write_image_report(ImagePredictor.load_artifact(artifact), path)
    else:
        from deepmine.artifact import load_predictor
        from deepmine.report.build import write_report

        result = write_report(load_predictor(artifact), path)
    if json_out:
        _emit_json(result)
        return
    print(f"report written to {result['path']} ({result['bytes'] / 1024:.0f} KiB)", file=sys.stderr)


@app.command()
def explain(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `deepmine fit`.")],
    data: DataArg,
    rows: Annotated[int, typer.Option("--rows", help="Explain the first N rows (Integrated Gradients).", min=0)] = 5,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Rows (a random sample beyond) for permutation importance.", min=10)
    ] = 2000,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Shuffles per column for permutation importance.", min=1)
    ] = 3,
    json_out: JsonOpt = False,
    sep: SepOpt = None,
    encoding: EncodingOpt = None,
    no_header: NoHeaderOpt = False,
    table: TableOpt = None,
    query: QueryOpt = None,
) -> None:
    """Why the model predicts what it does: permutation importance per input column (on the task's metric
    when DATA holds the target, else on the change of the predictions) and Integrated Gradients per row."""
    from deepmine.data.sources import check_sql_options, describe
    from deepmine.explain import add_token_attributions, integrated_gradients, permutation_importance
    from deepmine.explain.outputs import shown_prediction
    from deepmine.explain.tokens import strongest

    check_sql_options(data, table, query)
    _require_table_or_image(artifact, "explain", image=False)
    predictor = _load_for_data(artifact, sep, encoding, no_header, table, query)
    frame = predictor.read(data)  # as predict reads it: a folder of .txt files feeds the model's text column
    where = describe(data)
    seed = predictor.config.seed
    importance = permutation_importance(predictor, frame, repeats=repeats, max_rows=max_rows, seed=seed, where=where)
    modes = (predictor.insight or {}).get("baseline_modes")
    explained = None
    if rows:
        explained = integrated_gradients(predictor, frame.head(rows), modes=modes, where=where)
        explained = add_token_attributions(predictor, frame.head(rows), explained, where)
    result = {
        "artifact": str(artifact),
        "data": where,
        "task": predictor.task,
        "target": predictor.schema.target,
        "classes": [str(c) for c in predictor.schema.classes],
        "importance": importance,
        "attributions": explained,
    }
    if json_out:
        _emit_json(result)
        return
    from rich.table import Table

    console = _stderr()
    what = importance["metric"] if importance["mode"] == "metric" else "mean change of the predictions"
    view = Table(title=f"permutation importance ({what}, {importance['rows']} rows)")
    view.add_column("column")
    view.add_column("importance", justify="right")
    view.add_column("± std", justify="right")
    for col in importance["columns"]:
        view.add_row(col["column"], f"{col['importance']:.4f}", f"{col['std']:.4f}")
    console.print(view)
    if explained and explained["rows"] and explained["model"] != "the network":
        console.print(f"Integrated Gradients below explain {explained['model']}; the trees' share is in the table")
    for row in (explained or {}).get("rows", []):
        top = sorted(row["attributions"].items(), key=lambda kv: -abs(kv[1]))[:5]
        console.print(
            f"row {row['row']}: {shown_prediction(predictor, row['prediction'])} ({row['explained']} "
            f"{row['output']:.4g}, baseline "
            f"{row['baseline_output']:.4g}): " + ", ".join(f"{k} {v:+.3g}" for k, v in top),
            highlight=False,
            soft_wrap=True,
        )
        for column, tokens in row.get("tokens", {}).items():
            top = strongest(tokens)
            console.print(
                f"  {column}: " + (", ".join(f"'{t['token']}' {t['attribution']:+.3g}" for t in top) or "(empty)"),
                highlight=False,
                soft_wrap=True,
                markup=False,
            )


def _load_for_data(artifact: Path, sep, encoding, no_header, table, query):
    """Load an artifact and set how the new data is read (sniffed unless options are given)."""
    from deepmine.artifact import load_predictor

    predictor = load_predictor(artifact)
    fresh = {"sep": None, "encoding": None, "header": None, "table": None, "query": None}
    given = {k.split(".", 1)[1]: v for k, v in _read_overrides(sep, encoding, no_header, table, query).items()}
    data = predictor.config.data.model_copy(update={**fresh, **given})
    predictor.config = predictor.config.model_copy(update={"data": data})
    return predictor


# ---- entry point ----------------------------------------------------------------------------------
def _is_usage_error(err: Exception) -> bool:
    """A click usage error (unknown option, missing argument...): click's own or the copy newer typers vendor."""
    import click

    vendored = type(err).__module__.startswith("typer._click")
    return isinstance(err, click.ClickException) or (vendored and hasattr(err, "show") and hasattr(err, "exit_code"))


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user mistakes become one line on stderr and a non-zero exit (``--debug`` shows tracebacks)."""
    args = list(sys.argv[1:] if argv is None else argv)
    DEBUG["on"] = "--debug" in args or os.environ.get("DEEPMINE_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    ARGV[:] = args
    SHOWN_WARNINGS.clear()
    warnings.showwarning = _show_warning
    from deepmine.exceptions import DeepmineError

    try:
        # outside standalone mode typer *returns* the code of a typer.Exit (--devices' torchrun result) and of
        # Ctrl-C (130) instead of raising it; a command's own return value is None
        code = app(args=args, prog_name="deepmine", standalone_mode=False)
    except DeepmineError as err:
        if DEBUG["on"]:
            raise
        if _rank() > 0:  # every worker meets the same mistake: rank 0 says it, and torchrun stops the rest
            import time  # meanwhile; a mistake only this worker meets is still said, a moment later

            time.sleep(WORKER_ERROR_DELAY)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        code = 130
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, EOFError) as err:  # older typer turns Ctrl-C into Abort
        code = 130 if isinstance(err.__context__, KeyboardInterrupt) else 1
    except Exception as err:  # click usage errors, paths the system refused, and genuine bugs
        if _is_usage_error(err):
            err.show()
            sys.exit(err.exit_code)
        if DEBUG["on"]:
            raise
        if isinstance(err, OSError) and err.filename is not None:  # a missing folder, no permission, ...
            print(f"error: {_path_problem(err)}", file=sys.stderr)
            sys.exit(1)
        print(
            f"internal error: {type(err).__name__}: {err} (run again with --debug for the traceback)", file=sys.stderr
        )
        sys.exit(1)
    if code == 130 and _rank() == 0 and not os.environ.get("DEEPMINE_LAUNCHED"):  # --devices: the launcher says it
        resume = " (`deepmine fit ... --resume` continues from the last checkpoint)" if args[:1] == ["fit"] else ""
        print(f"interrupted{resume}", file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)


def _path_problem(err: OSError) -> str:
    """One line for an OSError on a path, naming the file the user gave rather than its temporary twin
    (``.report.html.x1y2.tmp`` → ``report.html``)."""
    path = Path(str(err.filename))
    twin = re.fullmatch(r"\.(.+)\.[^.]+\.tmp", path.name)
    shown = path.with_name(twin.group(1)) if twin else path
    if isinstance(err, FileExistsError | NotADirectoryError) and Path(shown).is_file():
        return f"'{shown}' is a file where a folder is needed; choose another output path"
    reason = (err.strerror or type(err).__name__).lower()
    return f"'{shown}': {reason}; check that its folder exists and can be written (or read)"


def _rank() -> int:
    """This process's rank in a multi-process torchrun job (0 otherwise)."""
    return int(os.environ.get("RANK", "0") or 0) if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else 0


if __name__ == "__main__":
    main()
