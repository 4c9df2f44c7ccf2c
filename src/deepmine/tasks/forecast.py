"""Multi-horizon forecasting of one multivariate timed series.

The series is cleaned (sorted, deduplicated, resampled to a regular grid, gaps filled), split in time into
train/validation/test rows, standardized with training statistics, and cut into (lookback, horizon) windows.
Models are trained with the Trainer on the training windows and early-stopped on the validation windows;
``auto`` trains DLinear and PatchTST and keeps whichever of them, or their mean, has the lowest validation
MSE. Test windows follow the DLinear/PatchTST protocol: every window whose forecast lies in the test rows,
its lookback reaching back into validation. Quantiles come from the validation residuals per horizon step
and variable. Saved as an artifact with ``"kind": "forecaster"``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepmine.exceptions import ConfigError, DataError
from deepmine.nn.forecast import build_forecaster
from deepmine.sequences.cleaning import Standardizer, check_length, numeric_targets, regular_series
from deepmine.sequences.config import ForecastRunConfig
from deepmine.sequences.windows import WindowBatches, window_starts
from deepmine.train.seeding import seed_everything
from deepmine.train.trainer import Trainer

KIND = "forecaster"
AUTO_MODELS = ("dlinear", "patchtst")


def split_rows(rows: int, split: list[float], where: str) -> tuple[int, int, int]:
    """Train/validation/test row counts from counts (8640,2880,2880) or fractions (0.7,0.1,0.2)."""
    if len(split) != 3 or any(v < 0 for v in split):
        raise ConfigError(
            f"split needs three non-negative sizes train,valid,test (got {split}); e.g. --split 0.7,0.1,0.2"
        )
    if all(v <= 1 for v in split):
        if sum(split) > 1 + 1e-9:
            raise ConfigError(
                f"split fractions {split} add up to {sum(split):g}, more than the whole series; make them add up "
                "to 1, e.g. --split 0.7,0.1,0.2"
            )
        train, test = int(rows * split[0]), int(rows * split[2])
        valid = rows - train - test if abs(sum(split) - 1) < 1e-9 else int(rows * split[1])
        return train, valid, test
    train, valid, test = (int(v) for v in split)
    if train + valid + test > rows:
        raise DataError(
            f"{where} has {rows} time steps after cleaning but the split asks for {train}+{valid}+{test} = "
            f"{train + valid + test}; pass smaller --split sizes"
        )
    return train, valid, test


def windows_mse(model: nn.Module, source: WindowBatches) -> dict[str, float]:
    model.eval()
    squared = absolute = 0.0
    count = 0
    with torch.inference_mode():
        for past, future in source.ordered():
            error = model(past) - future
            squared += float((error**2).sum())
            absolute += float(error.abs().sum())
            count += error.numel()
    return {"loss": squared / max(count, 1), "mae": absolute / max(count, 1)}


def predict_windows(
    models: list[nn.Module], weights: list[float], source: WindowBatches, constant: list[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted forecasts and truths of every window of ``source``: (windows, horizon, channels) each."""
    preds, truths = [], []
    ensemble = ForecastEnsemble(models, weights, constant).eval()
    with torch.inference_mode():
        for past, future in source.ordered():
            preds.append(ensemble(past).numpy())
            truths.append(future.numpy())
    return np.concatenate(preds), np.concatenate(truths)


class ForecastEnsemble(nn.Module):
    """Forecasting networks averaged with fixed weights; variables constant in training keep their last value."""

    def __init__(self, members: list[nn.Module], weights: list[float], constant: list[bool] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.weights = list(weights)
        self.constant = [int(i) for i, flag in enumerate(constant or []) if flag]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = sum(w * m(x) for m, w in zip(self.members, self.weights, strict=True))
        if self.constant:
            out = out.clone()
            out[:, :, self.constant] = x[:, -1:, self.constant]
        return out


class ForecastPredictor:
    """A fitted forecaster: cleaning settings, standardizer, networks, the series tail, test metrics."""

    def __init__(
        self,
        config: ForecastRunConfig,
        specs: list[dict[str, Any]],
        model: ForecastEnsemble,
        state: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.specs, self.model, self.state = config, specs, model, state
        self.scaler = Standardizer(state["mean"], state["std"])
        self.metrics = metrics or {}
        self.training = training or {}

    @property
    def task(self) -> str:
        return "forecast"

    @property
    def targets(self) -> list[str]:
        return list(self.state["targets"])

    def forecast(self, data: Any = None) -> pd.DataFrame:
        """Forecast the ``horizon`` steps after the end of ``data`` (default: the series it was fitted on).

        One row per future timestamp: the time column, each target, and ``target_q<q>`` columns for quantiles."""
        lookback, horizon, time_col = self.config.lookback, self.config.horizon, self.state["time"]
        if data is None:
            history = pd.DataFrame(self.state["tail"], columns=self.targets)
            end = pd.Timestamp(self.state["last_time"])
        else:
            regular, _ = self._regular(data, 0)
            history, end = regular.iloc[-lookback:].reset_index(drop=True), regular.index[-1]
        x = torch.from_numpy(self.scaler.transform(history.to_numpy(np.float64)[-lookback:])).unsqueeze(0)
        self.model.eval()
        with torch.inference_mode():
            z = self.model(x)[0].numpy()
        freq = pd.tseries.frequencies.to_offset(self.state["freq"])
        stamps = pd.date_range(end + freq, periods=horizon, freq=freq)
        out = pd.DataFrame({time_col: stamps})
        values = self.scaler.inverse(z)
        for j, name in enumerate(self.targets):
            out[name] = values[:, j]
        for q, offsets in zip(self.config.quantiles, self.state.get("quantile_offsets", []), strict=False):
            shifted = self.scaler.inverse(z + np.asarray(offsets))
            for j, name in enumerate(self.targets):
                out[f"{name}_q{q:g}"] = shifted[:, j]
        return out

    def _regular(self, data: Any, horizon: int) -> tuple[pd.DataFrame, dict[str, Any]]:
        """``data``'s targets on the training time grid (cleaned as in training), checked to hold at least
        ``lookback`` + ``horizon`` steps; and the cleaning report."""
        from deepmine.data.sources import describe, load_table

        where, time_col = describe(data), self.state["time"]
        frame = load_table(data, self.config.data)
        numeric_targets(frame, time_col, self.targets, where)
        regular, cleaning = regular_series(frame, time_col, self.targets, where, self.state["freq"])
        steps = self.config.lookback + horizon
        task = "evaluate a window" if horizon else "forecast from"
        fix = f"the saved model needs at least {steps} time steps to {task}: pass a longer stretch of the series"
        check_length(len(regular), self.config.lookback, horizon, where, fix=fix)
        return regular, cleaning

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Errors of every ``horizon``-step forecast made from ``lookback`` steps of ``data`` (a window per step,
        as the test figures of the fit): mse/mae on values standardized with the training statistics, and in the
        original units."""
        lookback, horizon = self.config.lookback, self.config.horizon
        regular, cleaning = self._regular(data, horizon)
        z = torch.from_numpy(self.scaler.transform(regular.to_numpy(np.float64)))
        windows = WindowBatches(z, window_starts(lookback, len(regular), lookback, horizon), lookback, horizon, 256)
        preds, truths = [], []
        self.model.eval()
        with torch.inference_mode():
            for past, future in windows.ordered():
                preds.append(self.model(past).numpy())
                truths.append(future.numpy())
        scores = _scores(np.concatenate(preds), np.concatenate(truths), self.scaler)
        return {**scores, "windows": len(windows.starts), "rows": len(regular), "filled": cleaning["filled"]}

    def plot(self, forecast: pd.DataFrame, path: Path, history_steps: int | None = None) -> Path:
        """PNG of the last part of the history and the forecast (with the quantile band), one panel per target."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        time_col = self.state["time"]
        tail = pd.DataFrame(self.state["tail"], columns=self.targets)
        freq = pd.tseries.frequencies.to_offset(self.state["freq"])
        end = pd.Timestamp(self.state["last_time"])
        tail_times = pd.date_range(end=end, periods=len(tail), freq=freq)
        keep = history_steps or min(len(tail), 3 * self.config.horizon)
        shown = self.targets[:8]
        fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.2 * len(shown)), sharex=True, squeeze=False)
        low_q = min(self.config.quantiles) if self.config.quantiles else None
        high_q = max(self.config.quantiles) if self.config.quantiles else None
        for ax, name in zip(axes[:, 0], shown, strict=True):
            ax.plot(tail_times[-keep:], tail[name].to_numpy()[-keep:], color="0.3", lw=1, label="history")
            ax.plot(forecast[time_col], forecast[name], color="tab:blue", lw=1.5, label="forecast")
            if low_q is not None and high_q is not None and low_q != high_q:
                ax.fill_between(
                    forecast[time_col],
                    forecast[f"{name}_q{low_q:g}"],
                    forecast[f"{name}_q{high_q:g}"],
                    color="tab:blue",
                    alpha=0.2,
                    label=f"q{low_q:g}–q{high_q:g}",
                )
            ax.set_ylabel(name)
        axes[0, 0].legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=90)
        plt.close(fig)
        tmp.replace(path)
        return path

    # ---- artifact ------------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the artifact folder atomically (deepmine.json, weights.safetensors, checksum.sha256).
        ``extra`` maps file names to DataFrames (CSV) or callables writing into the folder."""
        from deepmine.artifact import write_model_artifact

        fields = {
            "config": self.config.model_dump(mode="json"),
            "models": self.specs,
            "weights": self.model.weights,
            "state": self.state,
            "metrics": self.metrics,
            "training": self.training,
        }
        return write_model_artifact(path, KIND, fields, self.model, extra)

    @classmethod
    def load(cls, path: str | Path) -> ForecastPredictor:
        """Read an artifact written by :meth:`save` (checksums verified, no pickle)."""
        from deepmine.artifact import load_weights, read_manifest

        path = Path(path)
        manifest = read_manifest(path, KIND, "deepmine forecast --out")
        specs = manifest["models"]
        constant = manifest["state"].get("constant")
        model = ForecastEnsemble([build_forecaster(s) for s in specs], manifest["weights"], constant)
        load_weights(model, path)
        config = ForecastRunConfig.model_validate(manifest["config"])
        return cls(config, specs, model, manifest["state"], manifest.get("metrics"), manifest.get("training"))


def model_spec(config: ForecastRunConfig, name: str, channels: int) -> dict[str, Any]:
    m = config.model
    return {
        "name": name,
        "lookback": config.lookback,
        "horizon": config.horizon,
        "channels": channels,
        "revin": m.revin if m.revin is not None else name != "dlinear",
        "kernel": m.kernel,
        "hidden": m.hidden,
        "cell": m.cell,
        "patch": m.patch,
        "stride": m.stride,
        "d_model": m.d_model,
        "heads": m.heads,
        "layers": m.layers,
        "dropout": m.dropout,
    }


def _scores(pred: np.ndarray, truth: np.ndarray, scaler: Standardizer) -> dict[str, float]:
    original_pred, original_truth = scaler.inverse(pred), scaler.inverse(truth)
    return {
        "mse": float(np.mean((pred - truth) ** 2)),
        "mae": float(np.mean(np.abs(pred - truth))),
        "mse_original": float(np.mean((original_pred - original_truth) ** 2)),
        "mae_original": float(np.mean(np.abs(original_pred - original_truth))),
    }


def fit_forecast(data: Any, config: ForecastRunConfig | None = None) -> ForecastPredictor:
    """Clean, split, standardize, window, train, select on validation, score on test."""
    from deepmine.data.sources import describe, load_table

    config = config or ForecastRunConfig()
    started = time.perf_counter()
    where = describe(data)
    if not config.time:
        raise ConfigError("forecasting needs the time column: pass --time COLUMN")
    for q in config.quantiles:
        if not 0 < q < 1:
            raise ConfigError(f"quantile {q} is outside (0, 1); pass values such as --quantiles 0.1,0.9")
    frame = load_table(data, config.data)
    targets = numeric_targets(frame, config.time, config.targets, where)
    regular, cleaning = regular_series(frame, config.time, targets, where, config.freq)
    lookback, horizon = config.lookback, config.horizon
    check_length(len(regular), lookback, horizon, where)
    train, valid, test = split_rows(len(regular), config.split, where)
    check_length(train, lookback, horizon, where, "the training part")
    for part, size in (("validation", valid), ("test", test)):
        if size < horizon:
            raise DataError(
                f"the {part} part of {where} has {size} time steps, fewer than the horizon {horizon}; "
                "give it more rows with --split or use a shorter --horizon"
            )
    values = regular.to_numpy(np.float64)
    scaler = Standardizer.fit(values[:train])
    constant = [bool(v) for v in values[:train].std(axis=0) <= 1e-12]
    z = torch.from_numpy(scaler.transform(values))
    channels = len(targets)
    batch = 32 if config.trainer.batch_size == "full" else int(config.trainer.batch_size)
    train_windows = WindowBatches(z, window_starts(0, train, lookback, horizon), lookback, horizon, batch)
    valid_windows = WindowBatches(z, window_starts(train, train + valid, lookback, horizon), lookback, horizon, 256)
    test_windows = WindowBatches(
        z, window_starts(train + valid, train + valid + test, lookback, horizon), lookback, horizon, 256
    )
    names = list(AUTO_MODELS) if config.model.name == "auto" else [config.model.name]
    specs, members, histories = [], [], []
    for i, name in enumerate(names):
        generator = seed_everything(config.seed + i)
        spec = model_spec(config, name, channels)
        model = build_forecaster(spec)
        lr = config.optimizer.lr if name == "dlinear" else config.optimizer.lr / 5
        trainer = Trainer(
            model,
            nn.MSELoss(),
            config.trainer,
            config.optimizer.model_copy(update={"lr": lr}),
            generator=generator,
            evaluate=lambda m, source, _: windows_mse(m, source),
        )
        histories.append(trainer.fit(train_windows, valid_inputs=valid_windows))
        specs.append(spec)
        members.append(model)
    # candidates: each model alone and (with several) their mean; chosen on validation MSE only
    candidates: dict[str, list[float]] = {
        name: [float(i == j) for j in range(len(names))] for i, name in enumerate(names)
    }
    if len(names) > 1:
        candidates["mean"] = [1.0 / len(names)] * len(names)
    valid_scores, test_scores = {}, {}
    for label, weights in candidates.items():
        pred, truth = predict_windows(members, weights, valid_windows, constant)
        valid_scores[label] = _scores(pred, truth, scaler)
        pred, truth = predict_windows(members, weights, test_windows, constant)
        test_scores[label] = _scores(pred, truth, scaler)
    chosen = min(candidates, key=lambda label: valid_scores[label]["mse"])
    weights = candidates[chosen]
    ensemble = ForecastEnsemble(members, weights, constant)
    state: dict[str, Any] = {
        "time": config.time,
        "targets": targets,
        "freq": cleaning["freq"],
        "last_time": str(regular.index[-1]),
        "constant": constant,
        "tail": values[-max(lookback, 3 * horizon) :].tolist(),
        **scaler.state(),
    }
    if config.quantiles:
        pred, truth = predict_windows(members, weights, valid_windows, constant)
        residuals = truth - pred  # standardized, (windows, horizon, channels)
        state["quantile_offsets"] = [np.quantile(residuals, q, axis=0).tolist() for q in config.quantiles]
    metrics = {
        "test": {**test_scores[chosen], "windows": test_windows.rows},
        "valid": {**valid_scores[chosen], "windows": valid_windows.rows},
        "chosen": chosen,
        "candidates": {label: {"valid_mse": valid_scores[label]["mse"], **test_scores[label]} for label in candidates},
    }
    training = {
        "rows": {"train": train, "valid": valid, "test": test},
        "cleaning": cleaning,
        "epochs": {name: len(h) for name, h in zip(names, histories, strict=True)},
        "seconds": round(time.perf_counter() - started, 3),
    }
    return ForecastPredictor(config, specs, ensemble, state, metrics, training)
