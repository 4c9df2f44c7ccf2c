"""`deepmine forecast`: fit forecasting models on a timed series, score them on the test part, and write
the future values (CSV), a PNG of history + forecast, and the artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _numbers(text: str | None, name: str, kind: type = float) -> list[Any] | None:
    if text is None:
        return None
    from deepmine.exceptions import ConfigError

    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise ConfigError(f"{name} expects comma-separated numbers, got '{text}'") from err


def forecast(
    data: Annotated[str, typer.Argument(help="A CSV/TSV/Parquet/JSONL file or SQL URL with a time column.")],
    time: Annotated[str, typer.Option("--time", help="The time column.")],
    horizon: Annotated[int, typer.Option("--horizon", "-H", help="Steps to forecast.", min=1)],
    target: Annotated[
        list[str] | None, typer.Option("--target", "-t", help="Columns to forecast (repeat or comma-separate).")
    ] = None,
    lookback: Annotated[int | None, typer.Option("--lookback", "-L", help="Past steps each forecast sees.")] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="train,valid,test rows (8640,2880,2880) or fractions (0.7,0.1,0.2).")
    ] = None,
    quantiles: Annotated[str | None, typer.Option("--quantiles", help="Also forecast quantiles, e.g. 0.1,0.9.")] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="auto (DLinear + PatchTST, chosen on validation), dlinear, rnn, patchtst."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder to write (artifact, forecast.csv/png).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML run config.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config field: key=value.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for everything.")] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI, else ./deepmine-runs)."),
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not record this run with MLflow.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    sep: Annotated[str | None, typer.Option("--sep", help="Delimiter (sniffed when omitted).")] = None,
) -> None:
    """Forecast the next --horizon steps of every --target column from the last --lookback steps.

    The series is sorted, deduplicated (with a warning), resampled to a regular grid with gaps filled, split
    in time into train/valid/test, and standardized with training statistics. Test figures: `mse`/`mae` on
    standardized values and `mse_original`/`mae_original`, over every window of the test rows."""
    import sys

    from deepmine.config import build_config, parse_override
    from deepmine.io_utils import check_replaceable
    from deepmine.sequences.config import ForecastRunConfig
    from deepmine.tasks.forecast import fit_forecast
    from deepmine.tracking import record_fit, tracked_fit

    overrides: dict[str, Any] = dict(parse_override(item) for item in set_ or [])
    overrides["time"] = time
    overrides["horizon"] = horizon
    if target:
        overrides["targets"] = [c.strip() for item in target for c in item.split(",") if c.strip()]
    if lookback is not None:
        overrides["lookback"] = lookback
    if split is not None:
        overrides["split"] = _numbers(split, "--split")
    if quantiles is not None:
        overrides["quantiles"] = _numbers(quantiles, "--quantiles")
    if model is not None:
        overrides["model.name"] = model
    if seed is not None:
        overrides["seed"] = seed
    if sep is not None:
        overrides["data.sep"] = sep.encode().decode("unicode_escape")
    if tracking_uri is not None:
        overrides["tracking.uri"] = tracking_uri
    if no_track:
        overrides["tracking.enabled"] = False
    run = build_config(config, overrides, schema=ForecastRunConfig, aliases={}, command="forecast")
    if out is None:
        out = Path(f"{Path(data).name.split('.')[0]}-forecast")
    check_replaceable(out)  # before training: minutes of work must not end in a refused save
    predictor, tracker = tracked_fit(run, lambda: fit_forecast(data, run))
    future = predictor.forecast()
    predictor.save(
        out,
        extra={
            "forecast.csv": lambda p: future.to_csv(p, index=False),
            "forecast.png": lambda p: predictor.plot(future, p),
        },
    )
    test = predictor.metrics["test"]
    summary = {
        "artifact": str(out),
        "forecast": str(out / "forecast.csv"),
        "plot": str(out / "forecast.png"),
        "model": predictor.metrics["chosen"],
        "horizon": run.horizon,
        "lookback": run.lookback,
        "targets": predictor.targets,
        "rows": predictor.training["rows"],
        "epochs": predictor.training["epochs"],
        "seconds": predictor.training["seconds"],
        "mse": test["mse"],
        "mae": test["mae"],
        "mse_original": test["mse_original"],
        "mae_original": test["mae_original"],
        "test_windows": test["windows"],
        "valid_mse": predictor.metrics["valid"]["mse"],
        "candidates": predictor.metrics["candidates"],
        **record_fit(tracker, predictor, data, out),
    }
    if json_out:
        import json

        sys.stdout.write(json.dumps(summary) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    view = Table(title=f"test figures over {test['windows']} windows (model {summary['model']})")
    for key in ("mse", "mae", "mse_original", "mae_original"):
        view.add_column(key, justify="right")
    view.add_row(*(f"{test[k]:.4f}" for k in ("mse", "mae", "mse_original", "mae_original")))
    console.print(view)
    console.print(future.head(min(len(future), 10)).to_string(index=False), highlight=False)
    console.print(f"wrote [bold]{out}[/] (forecast.csv, forecast.png, the artifact)")


def predict_command(artifact: Path, data: str, output: Path | None) -> None:
    """The ``horizon`` steps after the end of DATA, forecast from its last ``lookback`` steps (CSV to stdout or
    ``output``)."""
    from deepmine.batch import write_predictions
    from deepmine.tasks.forecast import ForecastPredictor

    future = ForecastPredictor.load(artifact).forecast(data)
    write_predictions(iter([future]), output)
    if output is not None:
        import sys

        print(f"wrote the {len(future)} forecast steps after {data} to {output}", file=sys.stderr)


def evaluate_command(artifact: Path, data: str, json_out: bool) -> None:
    """Errors of every window's forecast over DATA (standardized and in the original units)."""
    import json
    import sys

    from deepmine.tasks.forecast import ForecastPredictor

    scores = ForecastPredictor.load(artifact).evaluate(data)
    if json_out:
        sys.stdout.write(json.dumps(scores) + "\n")
        return
    from rich.console import Console

    Console(stderr=True).print(
        f"{scores['windows']} windows over {data}: mse {scores['mse']:.4f}, mae {scores['mae']:.4f} (standardized); "
        f"mse {scores['mse_original']:.4g}, mae {scores['mae_original']:.4g} (original units)"
    )
