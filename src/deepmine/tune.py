"""Hyperparameter search with Optuna: `deepmine tune`.

Registered models declare a search space (``SEARCH_SPACES``, keyed like the model registry; the model itself is
a choice among those that have one): layer sizes, learning rate, dropout, weight decay, optimizer and the numeric
encoder.
Trials train with the ordinary Trainer; a callback reports the monitored validation value every epoch and
Optuna's median pruner stops weak trials early. Every trial uses the same seed and so the same validation split.
The study lives in an RDB storage — SQLite beside the runs by default (``deepmine-runs/optuna.db``), or a
``postgresql://…`` URL that workers on several machines share (same ``--storage`` and ``--study`` everywhere).
The best config is written as YAML and retrained into an artifact.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepmine.config import RunConfig, build_config
from deepmine.exceptions import ConfigError
from deepmine.train.callbacks import Callback, higher_is_better
from deepmine.urls import redact_in, redact_url

SearchSpace = Callable[[Any], dict[str, Any]]
SEARCH_SPACES: dict[str, SearchSpace] = {}
OPTIMIZERS = ["adamw", "adam", "rmsprop", "nesterov"]


def register_search_space(model: str) -> Callable[[SearchSpace], SearchSpace]:
    """Register the search space of the model registered under ``model`` (a duplicate is an error)."""

    def decorate(space: SearchSpace) -> SearchSpace:
        if model in SEARCH_SPACES:
            raise ValueError(f"search space for model '{model}' is registered twice")
        SEARCH_SPACES[model] = space
        return space

    return decorate


@register_search_space("mlp")
def mlp_space(trial: Any) -> dict[str, Any]:
    """Layer sizes (a funnel), learning rate, dropout, weight decay, optimizer, numeric encoder."""
    layers = trial.suggest_int("layers", 1, 3)
    width = trial.suggest_categorical("width", [32, 64, 128, 256, 512])
    return {
        "model.hidden": [max(8, width // 2**i) for i in range(layers)],
        "model.dropout": trial.suggest_float("dropout", 0.0, 0.5),
        # the numeric encoder: raw scaled features (0) or a per-column piecewise-linear embedding of this size
        "model.numeric_embedding": trial.suggest_categorical("numeric_embedding", [0, 8, 16, 32]),
        "optimizer.lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
        "optimizer.weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "optimizer.name": trial.suggest_categorical("optimizer", OPTIMIZERS),
    }


def suggest(trial: Any) -> dict[str, Any]:
    """Config overrides for one trial: the model (encoder choice) among the registered ones, then its space."""
    from deepmine.nn.registry import registered_models

    names = [name for name in registered_models() if name in SEARCH_SPACES]  # tabular models with a space
    name = trial.suggest_categorical("model", names) if len(names) > 1 else names[0]
    overrides = SEARCH_SPACES[name](trial)
    overrides["model.name"] = name
    return overrides


class PruneOnEpoch(Callback):
    """Reports the monitored validation value to the trial after every epoch; prunes when Optuna says so."""

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        import optuna

        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} ({self.monitor} {value:.4f})")


def default_storage() -> str:
    """SQLite beside the MLflow runs: ``deepmine-runs/optuna.db`` (or the tracking database's folder)."""
    from deepmine.tracking import resolve_uri, sqlite_path

    db = sqlite_path(resolve_uri())
    folder = db.parent if db is not None else Path.cwd() / "deepmine-runs"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


def make_storage(url: str) -> Any:
    """Optuna's RDBStorage; SQLite waits up to 60 s for a lock so concurrent workers do not fail."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        path = url.removeprefix("sqlite:///")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as err:  # bad URL, missing driver, unreachable server
        raise ConfigError(
            f"--storage '{redact_url(url)}' is not a usable Optuna storage: {redact_in(str(err).splitlines()[0], url)}"
        ) from err


def monitor_of(config: RunConfig) -> tuple[str, str]:
    """``(history key, direction)`` of the value trials are judged and pruned on."""
    monitor = config.trainer.monitor
    if monitor in ("auto", "loss"):
        return "valid_loss", "minimize"
    return f"valid_{monitor}", "maximize" if higher_is_better(monitor) else "minimize"


def _trial_config(base: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    # trials compare networks by their own validation history: trees would cost every trial and not be scored
    settings = {**overrides, "trainer.progress": False, "report.enabled": False, "tracking.enabled": False}
    settings["model.trees"] = "off"
    return build_config(base, settings)


RESUME_SEED_STEP = 1009  # a prime: seeds of resumed runs never meet those of other workers


def check_tunable(data: Any, base: RunConfig) -> tuple[dict[str, str], Any]:
    """What the study is about — source, target, task — after checking the data as a fit would (before any
    study is created), and the table read for it (None when streamed): images are refused (their models are
    not in the search space)."""
    from deepmine.data.sources import describe, load_table
    from deepmine.data.streaming import should_stream
    from deepmine.images.sources import is_image_source
    from deepmine.tasks.supervised import infer_run_schema

    if is_image_source(data, None):
        raise ConfigError(
            f"tune searches table and text models; {describe(data)} holds images, whose models it does not tune "
            "(set images.* and model.* with deepmine fit --set instead)"
        )
    task, frame = base.task, None
    if not should_stream(data, base.data):
        frame = load_table(data, base.data)
        task = infer_run_schema(frame, base, describe(data)).task
    return {"source": describe(data), "target": str(base.columns.target), "task": task}, frame


def _check_study(study: Any, about: dict[str, str], study_name: str) -> None:
    """Label a new study with what it tunes; refuse to join one made for another target or task."""
    made_for = {k: study.user_attrs.get(k) for k in about}
    if all(v is None for v in made_for.values()):
        for key, value in about.items():
            study.set_user_attr(key, value)
        return
    differs = [k for k in ("target", "task") if made_for[k] != about[k]]
    if differs:
        raise ConfigError(
            f"study '{study_name}' tunes target '{made_for['target']}' ({made_for['task']}) on {made_for['source']}; "
            f"this run's is '{about['target']}' ({about['task']}): choose another --study"
        )


def worker(
    data: Any,
    base: RunConfig,
    storage_url: str,
    study_name: str,
    trials: int,
    timeout: float | None,
    index: int,
    say: Callable[[str], None],
    frame: Any = None,
) -> None:
    """Run ``trials`` trials of the study in this process (on ``frame`` when the caller has read the table)."""
    import optuna

    from deepmine.data.sources import load_table
    from deepmine.data.streaming import should_stream
    from deepmine.tasks.supervised import fit_table

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial: our one-line error, not its traceback
    key, _ = monitor_of(base)
    source = frame  # the caller's read of the table, else one read per worker
    if source is None:
        source = data if should_stream(data, base.data) else load_table(data, base.data)
    study = optuna.load_study(
        study_name=study_name,
        storage=make_storage(storage_url),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    # the sampler's seed moves on with the trials the study already holds, so a resumed study explores new
    # points instead of repeating its first ones (the same seed and history still give the same trials)
    study.sampler = optuna.samplers.TPESampler(seed=base.seed + index + RESUME_SEED_STEP * len(study.trials))

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", index)
        config = _trial_config(base, suggest(trial))
        predictor = fit_table(source, config, callbacks=[PruneOnEpoch(trial, key)])
        best = max(predictor.training["best_epoch"] - 1, 0)
        value = predictor.history[best].get(key) if predictor.history else None
        if value is None:
            raise ConfigError(f"trials are judged on '{key}', which the validation metrics do not hold")
        return float(value)

    def report(study: Any, trial: Any) -> None:
        value = "" if trial.value is None else f" {key} {trial.value:.4f}"
        say(f"worker {index}: trial {trial.number} {trial.state.name.lower()}{value} {trial.params}")

    study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[report], catch=())


def _worker_command(data: str, storage: str, study: str, trials: int, timeout: float | None, index: int) -> list[str]:
    """The `deepmine tune … --worker-only` command for a helper process (same config options as ours)."""
    from deepmine import cli

    drop = {"--trials", "--workers", "--storage", "--study", "--out", "-o", "--timeout"}
    flags = {"--json", "--no-retrain", "--worker-only"}
    args, skip = [], False
    for arg in cli.ARGV[1:] if cli.ARGV[:1] == ["tune"] else []:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in drop:
            skip = "=" not in arg
            continue
        if name in flags:
            continue
        args.append(arg)
    if not args:
        raise ConfigError("tune --workers needs to run from the command line (`deepmine tune …`)")
    command = [sys.executable, "-m", "deepmine", "tune", *args, "--worker-only"]
    command += ["--trials", str(trials), "--storage", storage, "--study", study, "--seed-offset", str(index)]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    return command


def run_tune(
    data: str,
    base: RunConfig,
    *,
    trials: int,
    timeout: float | None = None,
    workers: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    out: Path | None = None,
    retrain: bool = True,
    worker_only: bool = False,
    worker_index: int = 0,
    console: Any = None,
) -> dict[str, Any]:
    """Create (or join) the study, run the trials in ``workers`` processes, then write and retrain the best."""
    import optuna

    def say(message: str) -> None:
        if console is not None:
            console.print(message, highlight=False, soft_wrap=True)
        else:
            print(message, file=sys.stderr)

    target = base.columns.target
    if target is None:
        raise ConfigError("tune needs the column to predict: pass --target COLUMN")
    stem = Path(str(data)).name.split(".")[0]
    study_name = study_name or f"{stem}-{target}"
    storage_url = storage or default_storage()
    key, direction = monitor_of(base)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial: our one-line error, not its traceback
    if worker_only:
        worker(data, base, storage_url, study_name, trials, timeout, worker_index, say)
        return {"study": study_name, "storage": redact_url(storage_url), "trials_run": trials}
    started = time.perf_counter()
    about, frame = check_tunable(data, base)
    study = optuna.create_study(
        study_name=study_name, storage=make_storage(storage_url), direction=direction, load_if_exists=True
    )
    _check_study(study, about, study_name)
    shares = [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]
    shown = redact_url(storage_url)
    say(f"tuning '{study_name}' in {shown}: {trials} trial(s) over {workers} worker(s), judged on {key}")
    helpers = []
    env = dict(os.environ)
    if workers > 1:
        env.setdefault("OMP_NUM_THREADS", "1")
    for index in range(1, workers):
        if shares[index]:
            command = _worker_command(str(data), storage_url, study_name, shares[index], timeout, index)
            helpers.append(subprocess.Popen(command, env=env))
    try:
        if shares[0]:
            worker(data, base, storage_url, study_name, shares[0], timeout, 0, say, frame)
    finally:
        codes = [proc.wait() for proc in helpers]
    if any(codes):
        raise ConfigError(f"a tune worker process failed (exit codes {codes}); see its messages above")
    study = optuna.load_study(study_name=study_name, storage=make_storage(storage_url))
    states: dict[str, int] = {}
    for trial in study.trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"no trial of study '{study_name}' completed ({states}); run more trials or more epochs")
    best = study.best_trial
    config = build_config(base, _overrides_of(best.params))
    out = out or Path(f"{stem}-tuned")
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    best_yaml = out / "best.yaml"
    tmp = best_yaml.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    tmp.replace(best_yaml)
    result: dict[str, Any] = {
        "study": study_name,
        "storage": redact_url(storage_url),
        "metric": key,
        "direction": direction,
        "trials": len(study.trials),
        "states": states,
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "best_config": str(best_yaml),
        "search_seconds": round(time.perf_counter() - started, 3),
    }
    if retrain:
        from deepmine import tracking
        from deepmine.data.sources import describe
        from deepmine.tasks.supervised import fit_table

        say(f"retraining the best config (trial {best.number}) on {describe(data)}")
        tracker = tracking.start(config)
        predictor = fit_table(data, config)
        artifact = predictor.save(out / "model", report=config.report.enabled)
        result["artifact"] = str(artifact)
        result["valid"] = {k: v for k, v in predictor.metrics["valid"].items() if k != "confusion_matrix"}
        if tracker is not None:
            result["run_id"] = tracker.record(
                predictor, source=str(data), artifact=artifact, command="tune", extra={"study": study_name}
            )
    return result


def _overrides_of(params: dict[str, Any]) -> dict[str, Any]:
    """Config overrides for a finished trial's params (replays :func:`suggest` on them)."""
    import optuna

    return suggest(optuna.trial.FixedTrial(params))
