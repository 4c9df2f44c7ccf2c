"""MLflow run tracking: every fit records its params, per-epoch and final metrics, the artifact and the report.

The default store is embedded: ``sqlite:///deepmine-runs/mlflow.db`` with artifacts in ``deepmine-runs/artifacts``
(``mlflow ui --backend-store-uri sqlite:///deepmine-runs/mlflow.db`` browses it). ``tracking.uri``,
``--tracking-uri`` or ``$MLFLOW_TRACKING_URI`` point elsewhere (for example an MLflow server).

MLflow is imported lazily, in a background thread started when a fit begins, so its import and the store's
start-up overlap with training. Tracking never loses a fit: any failure becomes a one-line warning.
``DEEPMINE_TRACKING=off`` in the environment turns tracking off for every fit (like ``--no-track``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from deepmine.exceptions import DeepmineWarning
from deepmine.urls import is_masked, redact_in, redact_url

DEFAULT_DIR = "deepmine-runs"
T = TypeVar("T")
FINAL_SKIP = {"rows", "confusion_matrix"}


def default_uri() -> str:
    """``sqlite:///<cwd>/deepmine-runs/mlflow.db``."""
    return f"sqlite:///{(Path.cwd() / DEFAULT_DIR / 'mlflow.db').resolve()}"


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI: the one given, else ``$MLFLOW_TRACKING_URI``, else the embedded default."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def is_main_process() -> bool:
    """False on the non-zero ranks of a distributed run (only rank 0 writes runs and artifacts)."""
    return int(os.environ.get("RANK", "0")) == 0


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"trainer": {"epochs": 5}}`` → ``{"trainer.epochs": "5"}`` (values as MLflow param strings)."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and dotted != "columns.roles":
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = str(value)[:6000]
    return out


THREAD_NAME = "deepmine-tracking"


def settle(timeout: float = 30.0) -> None:
    """Wait (at most ``timeout`` seconds) until any tracker has opened its store, so worker processes forked next
    (image DataLoader workers) never copy a lock that thread holds mid-operation (SQLite, MLflow's logging). An
    unreachable server (MLflow retries for minutes) does not hold the fit back longer than that."""
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME and thread is not threading.current_thread():
            thread.join(timeout)


class Tracker:
    """Opens the store in a background thread; :meth:`record` logs one finished fit."""

    def __init__(self, uri: str | None, experiment: str) -> None:
        self.uri = resolve_uri(uri)
        self.experiment = experiment
        self.client: Any = None
        self.experiment_id: str | None = None
        self.error: BaseException | None = None
        db = sqlite_path(self.uri)
        self.creating = db is not None and not db.exists()
        self._thread = threading.Thread(target=self._open, name=THREAD_NAME, daemon=True)
        self._thread.start()
        if self.creating:  # whatever fails later (the fit, saving, Ctrl-C), never leave a store half-created
            atexit.register(self.wait)

    def _open(self) -> None:
        try:
            self.client, self.experiment_id = open_store(self.uri, self.experiment, create=True)
        except BaseException as err:  # reported (as a warning) when the fit is recorded
            self.error = err

    def wait(self, timeout: float = 120.0) -> None:
        """When a fresh SQLite store is being created (migrated), let that finish before the process ends."""
        if self.creating:
            self._thread.join(timeout)

    def record(
        self,
        predictor: Any,
        *,
        source: str,
        artifact: Path | None = None,
        command: str = "fit",
        extra: dict[str, Any] | None = None,
    ) -> str | None:
        """Log the fit; return the MLflow run id (``None`` when tracking failed, with a warning)."""
        run_id = None
        try:
            self._thread.join()
            if self.error is not None:
                raise self.error
            run_id = log_fit(self.client, self.experiment_id, predictor, source, artifact, command, extra)
        except Exception as err:
            first = redact_in((str(err).strip().splitlines() or [""])[0], self.uri)[:300]
            warnings.warn(
                f"run tracking to {redact_url(self.uri)} failed ({type(err).__name__}: {first}); the fit and its "
                "artifact are kept (turn tracking off with --no-track or --set tracking.enabled=false)",
                DeepmineWarning,
                stacklevel=2,
            )
            if run_id is None:
                return None
        return run_id


def tracked_fit(config: Any, fit: Callable[[], T]) -> tuple[T, Tracker | None]:
    """Run ``fit()`` while the run's store opens beside it; return its result and the tracker (``None`` when
    tracking is off). A fresh store finishes being created before the process exits, whatever fails."""
    tracker = start(config)
    return fit(), tracker


def record_fit(tracker: Tracker | None, predictor: Any, source: str, artifact: Path) -> dict[str, str | None]:
    """``{"run_id": …}`` for a command's summary once the artifact is saved; ``{}`` when tracking is off."""
    if tracker is None:
        return {}
    return {"run_id": tracker.record(predictor, source=source, artifact=artifact)}


def start(config: Any, uri: str | None = None) -> Tracker | None:
    """A :class:`Tracker` for a run with ``config`` (``None`` when tracking is off or this is not rank 0)."""
    settings = config.tracking
    switched_off = os.environ.get("DEEPMINE_TRACKING", "").lower() in ("0", "off", "false", "no")
    if not settings.enabled or switched_off or not is_main_process():
        return None
    chosen = uri or settings.uri
    if chosen and is_masked(chosen):  # a config read back from an artifact or best.yaml
        warnings.warn(
            f"tracking.uri '{chosen}' holds a masked password (saved configs never store it), so this fit is not "
            "tracked; pass the real URI with --tracking-uri or $MLFLOW_TRACKING_URI",
            DeepmineWarning,
            stacklevel=2,
        )
        return None
    return Tracker(chosen, settings.experiment)


def open_store(uri: str, experiment: str, *, create: bool) -> tuple[Any, str | None]:
    """An ``MlflowClient`` on ``uri`` and the experiment's id (created, with artifacts beside a SQLite file)."""
    _quiet_mlflow()
    db = sqlite_path(uri)
    if db is not None and create:
        db.parent.mkdir(parents=True, exist_ok=True)
    from mlflow.tracking import MlflowClient

    _quiet_mlflow()  # mlflow sets its logger to INFO on import
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return client, found.experiment_id
    if not create:
        return client, None
    location = (db.parent / "artifacts").resolve().as_uri() if db is not None else None
    try:
        return client, client.create_experiment(experiment, artifact_location=location)
    except Exception:  # another process created it first
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return client, found.experiment_id


def epoch_metrics(history: list[Any]) -> list[tuple[str, float, int]]:
    """(name, value, epoch) of every numeric per-epoch entry; an ensemble's per-member histories (a list of
    lists, as recommenders keep) give ``member<k>_<name>`` for k ≥ 2, the first member's names unprefixed."""
    if history and isinstance(history[0], list):
        return [
            (name if k == 0 else f"member{k + 1}_{name}", value, step)
            for k, member in enumerate(history)
            for name, value, step in epoch_metrics(member)
        ]
    out = []
    for step, logs in enumerate(history):
        for key, value in logs.items():
            if key != "epoch" and isinstance(value, int | float):
                out.append(("epoch_seconds" if key == "seconds" else key, float(value), step))
    return out


def log_fit(
    client: Any,
    experiment_id: str | None,
    predictor: Any,
    source: str,
    artifact: Path | None,
    command: str,
    extra: dict[str, Any] | None = None,
) -> str:
    """Create one finished run: params, per-epoch history, final validation metrics, artifact folder."""
    import time

    from mlflow.entities import Metric, Param

    # any fitted object with config, metrics["valid"], training, task (and schema, history)
    config = predictor.config
    target = getattr(getattr(predictor, "schema", None), "target", None)
    if target is None:  # image models name theirs in the config (class folders have none)
        target = getattr(getattr(config, "columns", None), "target", None)
    task = str(getattr(predictor, "task", ""))
    training = getattr(predictor, "training", None) or {}
    history = getattr(predictor, "history", None) or training.get("history") or []
    stem = Path(source).name.split(".")[0] if source and not source.startswith("the ") else "frame"
    tags = {
        "mlflow.runName": f"{stem}-{target or task}",
        "deepmine.command": command,
        "deepmine.source": redact_url(source),
        "deepmine.target": "" if target is None else str(target),
        "deepmine.task": task,
        "deepmine.model": str(getattr(getattr(config, "model", None), "name", "")),
    }
    if artifact is not None:
        tags["deepmine.artifact"] = str(Path(artifact).resolve())
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    try:
        params = flatten(config.model_dump(mode="json"))
        params.update({f"extra.{k}": str(v) for k, v in (extra or {}).items()})
        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for name, value, step in epoch_metrics(history)]
        scores = getattr(predictor, "metrics", None) or {}
        final = scores.get("valid", {})
        for key, value in final.items():
            if key not in FINAL_SKIP and isinstance(value, int | float):
                metrics.append(Metric(key, float(value), now, 0))
        for key, value in (scores.get("test") or {}).items():  # held-out test figures (forecasting)
            if key not in FINAL_SKIP and isinstance(value, int | float):
                metrics.append(Metric(f"test_{key}", float(value), now, 0))
        for key in ("rows", "valid_rows", "sentences", "valid_sentences", "epochs", "best_epoch", "seconds"):
            value = training.get(key)
            if isinstance(value, dict) and key != "epochs":  # rows per split (forecasting)
                parts = {f"fit_{key}_{k}": v for k, v in value.items() if isinstance(v, int | float)}
                metrics.extend(Metric(name, float(v), now, 0) for name, v in parts.items())
                continue
            if isinstance(value, dict):  # epochs per candidate model (forecasting)
                value = list(value.values())
            if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
                value = max(value)  # per-member epochs of an ensemble (sequence models)
            if isinstance(value, int | float):
                metrics.append(Metric(f"fit_{key}", float(value), now, 0))
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params and 1000 metrics per batch
            client.log_batch(run_id, params=items[i : i + 100], metrics=metrics[:900] if i == 0 else [])
        for i in range(900, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        summary = {
            "metrics": {k: v for k, v in final.items() if k != "confusion_matrix"},
            "history": history,
            "training": {k: v for k, v in training.items() if k != "history"},
        }
        client.log_dict(run_id, summary, "summary.json")
        if artifact is not None and Path(artifact).is_dir():
            client.log_artifacts(run_id, str(artifact), artifact_path="artifact")
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id


# ---- listing -----------------------------------------------------------------------------------
LEAD_METRICS = ("accuracy", "roc_auc", "f1", "log_loss", "rmse", "mae", "r2")


def list_runs(
    uri: str | None = None, experiment: str = "deepmine", limit: int = 50, sort: str | None = None
) -> dict[str, Any]:
    """Runs of ``experiment`` newest first — or, with ``sort``, the ``limit`` best by that final metric among the
    runs that have it — each with its tags, final metrics and key params."""
    uri = resolve_uri(uri)
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return {"tracking_uri": redact_url(uri), "experiment": experiment, "runs": []}
    try:
        client, experiment_id = open_store(uri, experiment, create=False)
        if experiment_id is None:
            return {"tracking_uri": redact_url(uri), "experiment": experiment, "runs": []}
        newest = "attributes.start_time DESC"
        if sort is None:
            found = client.search_runs([experiment_id], order_by=[newest], max_results=limit)
        else:
            from deepmine.train.callbacks import higher_is_better

            metric = f"metrics.`{sort}`"
            order = [f"{metric} {'DESC' if higher_is_better(sort) else 'ASC'}", newest]
            found = client.search_runs([experiment_id], f"{metric} > -1e300", order_by=order, max_results=limit)
    except Exception as err:  # unreachable server, not an MLflow store
        from deepmine.exceptions import DataError

        first = redact_in((str(err).strip().splitlines() or [""])[0], uri)[:300]
        raise DataError(
            f"could not read runs from '{redact_url(uri)}' ({type(err).__name__}: {first}); check --tracking-uri"
        ) from err
    runs = []
    for run in found:
        tags = run.data.tags
        metrics = run.data.metrics
        runs.append(
            {
                "run_id": run.info.run_id,
                "name": tags.get("mlflow.runName", ""),
                "status": run.info.status,
                "start_time": run.info.start_time,
                "command": tags.get("deepmine.command", ""),
                "source": tags.get("deepmine.source", ""),
                "target": tags.get("deepmine.target", ""),
                "task": tags.get("deepmine.task", ""),
                "artifact": tags.get("deepmine.artifact"),
                "epochs": _whole(metrics.get("fit_epochs")),  # MLflow keeps metrics as floats
                "seconds": metrics.get("fit_seconds"),
                "metrics": {
                    k: v
                    for k, v in metrics.items()
                    if not k.startswith(("fit_", "valid_", "train_")) and k not in ("lr", "epoch_seconds")
                },
                "params": {
                    k: run.data.params[k]
                    for k in ("model.hidden", "optimizer.name", "optimizer.lr", "trainer.batch_size", "seed")
                    if k in run.data.params
                },
            }
        )
    return {"tracking_uri": redact_url(uri), "experiment": experiment, "runs": runs}


def _whole(value: float | None) -> int | None:
    """A count MLflow stored as a float, back as an int."""
    return None if value is None else int(value)
