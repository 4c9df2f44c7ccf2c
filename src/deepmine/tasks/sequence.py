"""Sequence classification and regression: fit an ensemble of sequence networks with the Trainer, predict,
score, and save/load the artifact (``deepmine.json`` with ``"kind": "sequence"`` + safetensors)."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepmine.exceptions import DataError, DeepmineWarning
from deepmine.nn.sequence import build_sequence_model
from deepmine.sequences.config import SequenceRunConfig
from deepmine.sequences.sources import from_arrays
from deepmine.train.batches import Batch, batch_indices
from deepmine.train.seeding import seed_everything
from deepmine.train.trainer import Trainer

KIND = "sequence"
AUTO_MODEL = "resnet"  # measured on UCR ECG200/SwedishLeaf: ahead of the Inception-style net at equal epochs
CHUNK = 1024


# ---- preparation ------------------------------------------------------------------------------------
def normalize(values: np.ndarray, lengths: np.ndarray, mode: str, stats: dict[str, Any] | None) -> np.ndarray:
    """z-normalize each series per channel over its valid steps (``series``), or by training ``stats``."""
    if mode == "none":
        return values
    if mode == "global":
        mean, std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
        out = (values - mean) / std
    else:
        mask = (np.arange(values.shape[1])[None, :] < lengths[:, None])[:, :, None]
        count = mask.sum(axis=1, keepdims=True)
        mean = (values * mask).sum(axis=1, keepdims=True) / count
        var = (((values - mean) * mask) ** 2).sum(axis=1, keepdims=True) / count
        std = np.sqrt(var)
        out = (values - mean) / np.where(std > 1e-8, std, 1.0)  # a constant series becomes zeros
    mask = np.arange(values.shape[1])[None, :, None] < lengths[:, None, None]
    return np.where(mask, out, 0.0).astype(np.float32)


def global_stats(values: np.ndarray, lengths: np.ndarray) -> dict[str, list[float]]:
    mask = np.arange(values.shape[1])[None, :] < lengths[:, None]
    flat = values[mask]  # (valid steps, channels)
    std = flat.std(axis=0)
    return {"mean": flat.mean(axis=0).tolist(), "std": np.where(std > 1e-8, std, 1.0).tolist()}


class SequenceBatches:
    """Shuffled mini-batches of sequences, augmented (scale, jitter, shift) when ``augment``."""

    def __init__(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, batch_size: int, augment: bool) -> None:
        self.x, self.lengths, self.y = x, lengths, y
        self.rows = len(y)
        self.batch_size = max(1, min(int(batch_size), self.rows))
        self.augment = augment
        self.padded = bool((lengths < x.shape[1]).any())

    def steps(self) -> int:
        return len(batch_indices(self.rows, self.batch_size, torch.Generator().manual_seed(0), shuffle=False))

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, steps, _ = x.shape
        scale = 1.0 + 0.1 * torch.randn(n, 1, 1, generator=generator)
        jitter = 0.03 * torch.randn(x.shape, generator=generator)
        limit = max(1, steps // 10)
        shifts = torch.randint(-limit, limit + 1, (n,), generator=generator)
        index = (torch.arange(steps).unsqueeze(0) - shifts.unsqueeze(1)).clamp(0, steps - 1)
        shifted = torch.gather(x, 1, index.unsqueeze(2).expand(-1, -1, x.shape[2]))
        return shifted * scale + jitter

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        for idx in batch_indices(self.rows, self.batch_size, generator):
            x = self.x[idx]
            if self.augment and not self.padded:
                x = self._augment(x, generator)
            yield ([x, self.lengths[idx]] if self.padded else [x]), self.y[idx]


def forward_all(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Outputs for every row in chunks, without gradients."""
    model.eval()
    padded = bool((lengths < x.shape[1]).any())
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), CHUNK):
            args = [x[i : i + CHUNK]] + ([lengths[i : i + CHUNK]] if padded else [])
            outs.append(model(*args))
    return torch.cat(outs)


# ---- predictor -------------------------------------------------------------------------------------
class SequencePredictor:
    """A fitted sequence model: normalization state, classes, network; predicts from arrays."""

    def __init__(
        self,
        config: SequenceRunConfig,
        spec: dict[str, Any],
        model: nn.Module,
        state: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.spec, self.model, self.state = config, spec, model, state
        self.metrics = metrics or {}
        self.training = training or {}

    @property
    def task(self) -> str:
        return self.state["task"]

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.state.get("classes") or [], dtype=object)

    def _inputs(self, values: np.ndarray, lengths: np.ndarray | None, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        if lengths is None:
            values, lengths = from_arrays(values, where)
        steps, channels = self.state["steps"], self.state["channels"]
        if values.shape[2] != channels:
            raise DataError(f"{where} has {values.shape[2]} channels per step; the model was fitted on {channels}")
        if values.shape[1] != steps:  # pad or cut to the training length (longer series keep their first steps)
            warnings.warn(
                f"{where} holds series of {values.shape[1]} steps; the model was trained on {steps}: "
                + ("each is cut to its first steps" if values.shape[1] > steps else "each is padded with zeros"),
                DeepmineWarning,
                stacklevel=3,
            )
            fixed = np.zeros((len(values), steps, channels), np.float32)
            keep = min(steps, values.shape[1])
            fixed[:, :keep] = values[:, :keep]
            values, lengths = fixed, np.minimum(lengths, steps)
        x = normalize(values, lengths, self.state["normalize"], self.state.get("stats"))
        return torch.from_numpy(x), torch.from_numpy(lengths)

    def outputs(self, values: np.ndarray, lengths: np.ndarray | None = None, where: str = "the data") -> np.ndarray:
        x, lens = self._inputs(values, lengths, where)
        return forward_all(self.model, x, lens).float().numpy()

    def predict_proba(
        self, values: np.ndarray, lengths: np.ndarray | None = None, where: str = "the data"
    ) -> np.ndarray:
        if self.task != "classification":
            raise TypeError("predict_proba needs a classifier; this model does regression")
        return torch.softmax(torch.from_numpy(self.outputs(values, lengths, where)), dim=1).numpy()

    def predict(self, values: np.ndarray, lengths: np.ndarray | None = None, where: str = "the data") -> np.ndarray:
        out = self.outputs(values, lengths, where)
        if self.task == "classification":
            return self.classes_[out.argmax(axis=1)]
        return out[:, 0] * self.state["y_std"] + self.state["y_mean"]

    def score(
        self, values: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None, where: str = "the data"
    ) -> dict[str, Any]:
        """Test metrics: those of table classifiers (accuracy, balanced accuracy, precision, recall, F1, ROC-AUC,
        log loss, average precision) or regressors (rmse, mae, r2)."""
        from sklearn import metrics

        check_labels_present(y, where)
        if self.task == "classification":
            from deepmine.evaluate.metrics import classification_metrics

            truth = np.asarray([str(v) for v in y], dtype=object)
            unknown = sorted(set(truth) - set(self.classes_))
            if unknown and not set(truth) & set(self.classes_):
                raise DataError(
                    f"the label column of {where} holds no training class (it holds {unknown[:2]}, classes "
                    f"{list(self.classes_)}): evaluate needs labelled series, the label in the training position"
                )
            if unknown:
                raise DataError(f"labels {unknown[:3]} were not seen in training (classes {list(self.classes_)})")
            index = {label: i for i, label in enumerate(self.classes_)}
            proba = self.predict_proba(values, lengths, where)
            scored = classification_metrics(np.asarray([index[t] for t in truth]), proba, len(self.classes_))
            return {**scored, "rows": len(truth)}
        predicted = self.predict(values, lengths, where)
        truth = np.asarray(y, dtype=np.float64)
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
            "mae": float(metrics.mean_absolute_error(truth, predicted)),
            "r2": float(metrics.r2_score(truth, predicted)),
            "rows": len(truth),
        }

    # ---- artifact ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the artifact folder atomically: deepmine.json, weights.safetensors, checksum.sha256."""
        from deepmine.artifact import write_model_artifact

        fields = {
            "config": self.config.model_dump(mode="json"),
            "model": self.spec,
            "state": self.state,
            "metrics": self.metrics,
            "training": self.training,
        }
        return write_model_artifact(path, KIND, fields, self.model)

    @classmethod
    def load(cls, path: str | Path) -> SequencePredictor:
        """Read an artifact written by :meth:`save` (checksums verified, no pickle)."""
        from deepmine.artifact import load_weights, read_manifest

        path = Path(path)
        manifest = read_manifest(path, KIND, "deepmine fit --task sequence")
        spec = manifest["model"]
        model = build_sequence_model(spec)
        load_weights(model, path)
        config = SequenceRunConfig.model_validate(manifest["config"])
        return cls(config, spec, model, manifest["state"], manifest.get("metrics"), manifest.get("training"))


# ---- fitting ---------------------------------------------------------------------------------------
def check_labels_present(y: np.ndarray, where: str) -> None:
    """A one-line error naming the rows whose label is missing (NaN, None or a blank cell, numbers or text)."""
    import pandas as pd

    missing = pd.isna(pd.Series(np.asarray(y, dtype=object)).replace(r"^\s*$", np.nan, regex=True)).to_numpy()
    if missing.any():
        rows = (np.flatnonzero(missing) + 1).tolist()
        raise DataError(
            f"{where}: {len(rows)} label(s) are missing, in row(s) {rows[:5]}{' ...' if len(rows) > 5 else ''}; "
            "drop those rows"
        )


def _task(y: np.ndarray, asked: str) -> str:
    if asked != "auto":
        return asked
    numeric = np.issubdtype(np.asarray(y).dtype, np.number)
    if numeric and len(np.unique(y)) > max(20, len(y) // 10) and not np.all(np.mod(y, 1) == 0):
        return "regression"
    return "classification"


def member_spec(config: SequenceRunConfig, channels: int, outputs: int, steps: int) -> dict[str, Any]:
    m = config.model
    return {
        "name": m.name,
        "channels": channels,
        "classes": outputs,
        "steps": steps,
        "hidden": m.hidden,
        "layers": m.layers,
        "bidirectional": m.bidirectional,
        "dropout": m.dropout,
        "filters": m.filters,
        "depth": m.depth,
    }


def fit_sequences(
    values: np.ndarray,
    y: np.ndarray,
    config: SequenceRunConfig | None = None,
    lengths: np.ndarray | None = None,
    where: str = "the data",
) -> SequencePredictor:
    """Fit ``config.model.members`` networks on (rows, steps[, channels]) ``values`` and labels ``y``."""
    from deepmine.nn.sequence import SequenceEnsemble, build_member

    config = config or SequenceRunConfig()
    started = time.perf_counter()
    if lengths is None:
        values, lengths = from_arrays(values, where)
    y = np.asarray(y)
    if len(y) != len(values):
        raise DataError(f"{where}: {len(values)} series but {len(y)} labels; pass one label per series")
    check_labels_present(y, where)
    task = _task(y, config.task)
    state: dict[str, Any] = {
        "task": task,
        "steps": int(values.shape[1]),
        "channels": int(values.shape[2]),
        "normalize": config.sequence.normalize,
    }
    if config.sequence.normalize == "global":
        state["stats"] = global_stats(values, lengths)
    if task == "classification":
        labels = np.asarray([str(v) for v in y], dtype=object)
        classes = sorted(set(labels))
        with contextlib.suppress(ValueError):  # numeric labels in numeric order (-1 before 1, 2 before 10)
            classes = sorted(classes, key=float)
        if len(classes) < 2:
            raise DataError(f"{where} has one class ({classes[0]!r}); classification needs at least two")
        lookup = {c: i for i, c in enumerate(classes)}
        target = torch.tensor([lookup[v] for v in labels], dtype=torch.long)
        state["classes"] = classes
        outputs, loss_fn = len(classes), nn.CrossEntropyLoss()
    else:
        numbers = y.astype(np.float64)
        state["y_mean"], state["y_std"] = float(numbers.mean()), float(numbers.std() or 1.0)
        target = torch.from_numpy(((numbers - state["y_mean"]) / state["y_std"]).astype(np.float32)).unsqueeze(1)
        outputs, loss_fn = 1, nn.MSELoss()
    x = torch.from_numpy(normalize(values, lengths, state["normalize"], state.get("stats")))
    lens = torch.from_numpy(lengths)
    spec = member_spec(config, state["channels"], outputs, state["steps"])
    names = [AUTO_MODEL if config.model.name == "auto" else config.model.name] * config.model.members
    augment = config.sequence.augment
    members: list[nn.Module] = []
    histories = []
    train_rows = np.arange(len(target))
    valid_rows = np.arange(0)
    if config.trainer.early_stopping:
        rng = np.random.default_rng(config.seed)
        order = rng.permutation(len(target))
        cut = max(1, int(round(len(target) * config.trainer.valid_fraction)))
        valid_rows, train_rows = np.sort(order[:cut]), np.sort(order[cut:])
    for i, name in enumerate(names):
        generator = seed_everything(config.seed + i)
        member = build_member({**spec, "name": name})
        use_augment = name in ("resnet", "inception") if augment is None else augment
        source = SequenceBatches(
            x[train_rows], lens[train_rows], target[train_rows], _batch(config, len(train_rows)), use_augment
        )
        trainer = Trainer(
            member,
            loss_fn,
            config.trainer,
            config.optimizer,
            generator=generator,
            evaluate=_evaluator(task, loss_fn),
        )
        valid = (x[valid_rows], lens[valid_rows]) if len(valid_rows) else None
        histories.append(trainer.fit(source, valid_inputs=valid, valid_target=target[valid_rows] if valid else None))
        members.append(member)
    model = SequenceEnsemble(members)
    spec = {**spec, "members": len(members), "names": names}
    training = {
        "rows": int(len(train_rows)),
        "valid_rows": int(len(valid_rows)),
        "epochs": [len(h) for h in histories],
        "seconds": round(time.perf_counter() - started, 3),
    }
    predictor = SequencePredictor(config, spec, model, state, {}, training)
    if len(valid_rows):
        predictor.metrics["valid"] = predictor.score(values[valid_rows], y[valid_rows], lengths[valid_rows])
    return predictor


def _batch(config: SequenceRunConfig, rows: int) -> int:
    size = config.trainer.batch_size
    return rows if size == "full" else int(size)


def _evaluator(task: str, loss_fn: nn.Module):
    def evaluate(model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor) -> dict[str, float]:
        out = forward_all(model, *inputs)
        scores = {"loss": float(loss_fn(out, target))}
        if task == "classification":
            scores["accuracy"] = float((out.argmax(dim=1) == target).float().mean())
        return scores

    return evaluate
