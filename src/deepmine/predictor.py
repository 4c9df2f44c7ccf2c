"""Predictor = Schema + FeaturePipeline + Model + config + metrics; predicts from raw data."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepmine.config import RunConfig
from deepmine.data.schema import Schema
from deepmine.data.sources import DataSource, describe, load_table, reparse
from deepmine.exceptions import ColumnError, DataError, DeepmineWarning
from deepmine.features.pipeline import Blocks, FeaturePipeline
from deepmine.text.folders import FILE_COLUMN, as_model_reads, is_flat_text_folder, is_folder

PREDICT_CHUNK = 8192


def forward_in_chunks(model: nn.Module, inputs: list[torch.Tensor], chunk: int = PREDICT_CHUNK) -> torch.Tensor:
    """Model outputs for every row, computed in chunks without gradients."""
    model.eval()
    n = len(inputs[0])
    with torch.inference_mode():
        outs = [model(*[t[i : i + chunk] for t in inputs]) for i in range(0, n, chunk)]
    return torch.cat(outs) if outs else torch.zeros((0, 1))


def to_tensors(blocks: Blocks) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(b)) for b in blocks.as_list()]


class Predictor:
    """A fitted model with everything needed to predict from raw rows."""

    def __init__(
        self,
        schema: Schema,
        pipeline: FeaturePipeline,
        model: nn.Module,
        config: RunConfig,
        model_spec: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        history: list[dict[str, float]] | None = None,
        training: dict[str, Any] | None = None,
        insight: dict[str, Any] | None = None,
    ) -> None:
        self.schema = schema
        self.pipeline = pipeline
        self.model = model
        self.config = config
        self.model_spec = model_spec
        self.metrics = metrics or {}
        self.history = history or []
        self.training = training or {}
        self.insight = insight  # what the report needs from fit time (profile, validation outputs, examples)

    # ---- properties ---------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.schema.task or ""

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.schema.classes, dtype=object)

    @property
    def is_classifier(self) -> bool:
        return self.task in ("binary", "multiclass")

    @property
    def is_multilabel(self) -> bool:
        return self.task == "multilabel"

    # ---- prediction -----------------------------------------------------------------------------
    def _frame(self, data: DataSource, verbatim: str | None = None) -> tuple[pd.DataFrame, str]:
        if isinstance(data, list | tuple | pd.Series | np.ndarray):  # rows of values in the input columns' order
            columns = [s.name for s in self.schema.features]
            array = np.asarray(data, dtype=object)
            rows = array.reshape(-1, 1) if array.ndim == 1 else array
            if rows.ndim != 2 or rows.shape[1] != len(columns):
                raise DataError(
                    f"a {type(data).__name__} of shape {array.shape} does not fit this model's {len(columns)} input "
                    f"column(s) {columns[:10]}: pass one value per row for a one-column model, rows of "
                    f"{len(columns)} values in that order, or a DataFrame, file or SQL URL with those columns"
                )
            return load_table(pd.DataFrame(rows, columns=columns)), f"the {len(rows)} given row(s)"
        return self.read(data, verbatim), describe(data)

    def read(self, data: DataSource, verbatim: str | None = None) -> pd.DataFrame:
        """``data`` loaded as this model reads it (see :func:`load_table`): a folder of ``.txt`` files gives its
        texts to the model's one text column, a class folder's labels to its target, and its ``file`` column only
        when it is ``verbatim`` (the id)."""
        frame = load_table(data, self.config.data, verbatim=verbatim)
        if not is_folder(data):
            return frame
        inputs = [s.name for s in self.schema.features]
        return as_model_reads(frame, inputs, self.schema.names("text"), verbatim, describe(data), self.schema.target)

    def id_of(self, id_column: str | None, data: DataSource = None) -> str | None:
        """The column copied into predictions: ``id_column``, else the file names of a flat folder of ``.txt`` files
        (``data`` being that folder), else the fit's ``columns.id``."""
        return id_column or (FILE_COLUMN if is_flat_text_folder(data) else self.config.columns.id)

    def with_ids(self, frame: pd.DataFrame, data: DataSource, id_column: str | None) -> tuple[pd.DataFrame, Any]:
        """``(frame to score, ids)`` for a frame read with ``id_column`` verbatim: an id that is also a model input
        is scored as the reader reads inputs, and echoed as written."""
        if not id_column or id_column not in frame.columns:
            return frame, None
        ids = frame[id_column]
        if id_column in {s.name for s in self.schema.features}:
            frame = frame.assign(**{id_column: reparse(ids, data, self.config.data)})
        return frame, ids

    def _outputs(self, frame: pd.DataFrame, where: str) -> torch.Tensor:
        blocks = self.pipeline.transform(frame, where)
        return forward_in_chunks(self.model, to_tensors(blocks))

    def _proba_and_values(self, frame: pd.DataFrame, where: str) -> tuple[np.ndarray | None, np.ndarray]:
        return self.predict_blocks(self.pipeline.transform(frame, where))

    def predict_blocks(self, blocks: Blocks) -> tuple[np.ndarray | None, np.ndarray]:
        """``(probabilities or None, predictions)`` for model inputs already made by the pipeline."""
        outputs = forward_in_chunks(self.model, to_tensors(blocks))
        if self.is_multilabel:  # one sigmoid per label; predictions are lists of labels
            proba = torch.sigmoid(outputs.float()).numpy()
            return proba, self.pipeline.decode_target(self.decide(proba))
        if self.is_classifier:
            proba = torch.softmax(outputs.float(), dim=1).numpy()
            return proba, self.pipeline.decode_target(self.decide(proba))
        return None, self.pipeline.decode_target(outputs.squeeze(-1).double().numpy())

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class indices from probabilities: the most probable class, or for a binary model with a decision
        threshold chosen on validation (``trainer.threshold``), positive when ``proba[:, 1] >= threshold``."""
        if self.is_multilabel:
            from deepmine.tasks.multilabel import decide

            return decide(proba, self.model_spec.get("label_thresholds"))
        threshold = self.model_spec.get("decision_threshold")
        if threshold is None or proba.shape[1] != 2:
            return proba.argmax(axis=1)
        return (proba[:, 1] >= threshold).astype("int64")

    def predict(self, data: DataSource) -> np.ndarray:
        """Predicted labels (classification), label lists (multilabel) or values (regression), one per row."""
        frame, where = self._frame(data)
        return self._proba_and_values(frame, where)[1]

    def predict_proba(self, data: DataSource) -> np.ndarray:
        """Class (or per-label) probabilities, shape (rows, classes), columns in the order of ``classes_``."""
        if not (self.is_classifier or self.is_multilabel):
            raise TypeError(f"predict_proba needs a classifier; this model does {self.task}")
        frame, where = self._frame(data)
        proba, _ = self._proba_and_values(frame, where)
        return proba

    def predict_frame(self, data: DataSource, id_column: str | None = None) -> pd.DataFrame:
        """One row per input row, in input order: [id], prediction, then ``proba_<class>`` columns."""
        id_column = self.id_of(id_column, data)
        frame, where = self._frame(data, id_column)
        frame, ids = self.with_ids(frame, data, id_column)
        return self.predictions_table(frame, where, id_column, ids)

    def predict_loaded(self, frame: pd.DataFrame, where: str = "the data") -> tuple[np.ndarray | None, np.ndarray]:
        """``(probabilities or None, predictions)`` for a loaded frame (``where`` names it in errors)."""
        return self._proba_and_values(frame, where)

    def predictions_table(
        self, frame: pd.DataFrame, where: str, id_column: str | None = None, ids: Any = None
    ) -> pd.DataFrame:
        """:meth:`predict_frame` for a frame that is already loaded (``where`` names it in errors); ``ids``, when
        given, are the id column's values to echo (as :meth:`with_ids` returns them)."""
        id_column = self.id_of(id_column)
        if id_column and id_column not in frame.columns:
            from deepmine.exceptions import did_you_mean

            raise ColumnError(f"id column '{id_column}' is not in {where}{did_you_mean(id_column, frame.columns)}")
        outputs = ["prediction"] + ([f"proba_{label}" for label in self.schema.classes] if self.schema.classes else [])
        if id_column in outputs:
            raise ColumnError(
                f"id column '{id_column}' of {where} has the name of an output column ({', '.join(outputs[:3])}"
                f"{' ...' if len(outputs) > 3 else ''}): the ids would be overwritten; rename that column in the data"
            )
        carried_only = id_column and id_column not in {s.name for s in self.schema.features}
        scored = frame.drop(columns=[id_column]) if carried_only else frame  # the id the user named is not "ignored"
        proba, values = self._proba_and_values(scored, where)
        out = pd.DataFrame(index=range(len(frame)))
        if id_column:
            out[id_column] = (frame[id_column] if ids is None else ids).to_numpy()
        if self.is_multilabel:
            from deepmine.tasks.multilabel import join_lists

            values = join_lists(values, self.schema.label_sep or "|")
        out["prediction"] = values
        if proba is not None:
            for i, label in enumerate(self.schema.classes):
                out[f"proba_{label}"] = proba[:, i]
        return out

    def evaluate(self, data: DataSource) -> dict[str, Any]:
        """Metrics on labelled data (it must hold the target column)."""
        frame, where = self._frame(data)
        target = self.schema.target
        if target not in frame.columns:
            from deepmine.exceptions import did_you_mean

            raise ColumnError(
                f"{where} has no target column '{target}'{did_you_mean(target, frame.columns)}; "
                "evaluate needs labelled rows"
            )
        missing = frame[target].isna()
        if missing.any() and not self.is_multilabel:  # multilabel: an empty value is a row with no labels
            warnings.warn(
                f"{where}: leaving out {int(missing.sum())} of {len(frame)} row(s) with no value in target "
                f"'{target}'; the metrics cover the other {int((~missing).sum())}",
                DeepmineWarning,
                stacklevel=2,
            )
            frame = frame[~missing]  # the index keeps each row's number in the file for later messages
        return self.score_frame(frame, where)

    def score_frame(self, frame: pd.DataFrame, where: str) -> dict[str, Any]:
        """Metrics for an in-memory labelled frame."""
        # scikit-learn's metrics load lazily: prediction and serving never need them
        from deepmine.evaluate.metrics import classification_metrics, confusion, regression_metrics

        y = self.pipeline.encode_target(frame, where)
        proba, values = self._proba_and_values(frame, where)
        if self.is_multilabel:
            from deepmine.tasks.multilabel import multilabel_metrics

            metrics = multilabel_metrics(y, self.decide(proba))
        elif self.is_classifier:
            decided = self.decide(proba)
            metrics: dict[str, Any] = classification_metrics(y, proba, len(self.schema.classes), y_pred=decided)
            metrics["confusion_matrix"] = confusion(y, decided, len(self.schema.classes))
        else:
            metrics = regression_metrics(self.pipeline.decode_target(y.astype("float64")), values)
        metrics["rows"] = len(frame)
        return metrics

    # ---- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path, *, report: bool = False) -> Path:
        """Write the artifact folder atomically (with ``report.html`` when ``report``); return its path."""
        from deepmine.artifact import save_predictor

        return save_predictor(self, Path(path), report=report)

    def __repr__(self) -> str:
        return f"Predictor(task={self.task!r}, target={self.schema.target!r}, model={self.config.model.name!r})"
