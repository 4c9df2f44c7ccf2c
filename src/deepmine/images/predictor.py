"""ImagePredictor: the fitted image preprocessing + network (+ tabular pipeline), predicting from raw images;
saved as an artifact folder of kind ``image`` (``deepmine.json``, ``weights.safetensors``, ``checksum.sha256``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepmine.exceptions import ArtifactError, DataError
from deepmine.images.config import ImageRunConfig
from deepmine.images.dataset import ImageBatches, image_store
from deepmine.images.sources import ImageData, load_images
from deepmine.images.transforms import ImageSpec

LABEL_NAMES = ("label", "labels", "class", "target", "y", "category")
KIND = "image"
FORMAT_VERSION = 1
MANIFEST, WEIGHTS = "deepmine.json", "weights.safetensors"
PREDICT_BATCH = 512


def json_value(value: Any) -> Any:
    """A class label as plain JSON (NumPy scalars → Python)."""
    return value.item() if isinstance(value, np.generic) else value


class ImagePredictor:
    """A fitted image classifier: ``predict``, ``predict_proba``, ``predict_frame``, ``evaluate``, ``save``."""

    def __init__(
        self,
        spec: ImageSpec,
        model: nn.Module,
        config: ImageRunConfig,
        model_spec: dict[str, Any],
        classes: list[Any],
        *,
        tabular: Any = None,
        metrics: dict[str, Any] | None = None,
        history: list[dict[str, float]] | None = None,
        training: dict[str, Any] | None = None,
        insight: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.model = model
        self.config = config
        self.model_spec = model_spec
        self.classes = [json_value(c) for c in classes]
        self.tabular = tabular  # a fitted FeaturePipeline for the table's other columns, or None
        self.metrics = metrics or {}
        self.history = history or []
        self.training = training or {}
        self.insight = insight  # validation outputs and misclassified thumbnails for the report (images.insight)

    @property
    def task(self) -> str:
        return "binary" if len(self.classes) == 2 else "multiclass"

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    # ---- inputs -----------------------------------------------------------------------------------------
    def load(self, data: Any, labels: Any = None, verbatim: str | None = None) -> ImageData:
        """Read images (folder, table of paths, IDX/NPZ, array, list of paths) the way training did; a table's
        column ``verbatim`` (an id) reads exactly as written."""
        return load_images(
            data,
            self.config.images,
            labels=labels,
            target=self.config.columns.target,
            read=self.config.data,
            trained_column=self.training.get("path_column"),
            verbatim=verbatim,
        )

    def encode_labels(self, labels: np.ndarray, where: str) -> np.ndarray:
        """Class indices for labels; a label never seen in training is an error naming it."""
        index = {str(c): i for i, c in enumerate(self.classes)}
        keys = pd.Series(labels).astype(str).to_numpy()
        unknown = sorted({k for k in keys if k not in index})
        if unknown:
            raise DataError(
                f"{where} has label(s) {unknown[:5]} the model was not trained on; known classes: {self.classes[:20]}"
            )
        return np.asarray([index[k] for k in keys], dtype=np.int64)

    def batches(
        self,
        data: ImageData,
        target: torch.Tensor | None = None,
        batch_size: int = PREDICT_BATCH,
        cache: Path | None = None,
    ) -> ImageBatches:
        tabular = []
        if self.tabular is not None:
            from deepmine.predictor import to_tensors

            tabular = to_tensors(self.tabular.transform(data.table, data.where))
        return ImageBatches(
            image_store(data, self.spec, cache),
            target,
            self.spec,
            batch_size,
            tabular=tabular,
            train=False,
            workers=self.config.images.workers,
            channels_last=self.config.model.channels_last,
        )

    def outputs(self, data: ImageData) -> torch.Tensor:
        """Class scores (logits) for every image, in order."""
        self.model.eval()
        with torch.inference_mode():
            outs = [self.model(*inputs) for inputs, _ in self.batches(data).epoch(None)]
        return torch.cat(outs).float() if outs else torch.zeros((0, len(self.classes)))

    # ---- prediction ---------------------------------------------------------------------------------------
    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, shape (images, classes), columns in the order of ``classes_``; every image must
        be readable (so row i answers input i): :meth:`predict_frame` keeps empty rows for unreadable ones."""
        images = self.load(data)
        if images.skipped:
            raise DataError(
                f"{images.where}: {len(images.skipped)} of {len(images) + len(images.skipped)} images could not be "
                f"read (first: {images.skipped[0]}); fix or remove them, or use predict_frame, which keeps an empty "
                "row for each"
            )
        return torch.softmax(self.outputs(images), dim=1).numpy()

    def predict(self, data: Any) -> np.ndarray:
        """The most probable class of each image (every image must be readable, see :meth:`predict_proba`)."""
        return self.classes_[self.predict_proba(data).argmax(axis=1)]

    def predict_frame(self, data: Any, id_column: str | None = None) -> pd.DataFrame:
        """One row per input image, in input order: its path (or index), the prediction and ``proba_<class>``
        columns — empty for an image that could not be read (named in a warning)."""
        images = self.load(data, verbatim=id_column)
        out = self._frame(images, id_column)
        if id_column and images.table is not None:  # a key, not an input: no "not trained on" warning for it
            images.table = images.table.drop(columns=[id_column])
        proba = torch.softmax(self.outputs(images), dim=1).numpy()
        out["prediction"] = self.classes_[proba.argmax(axis=1)]
        for i, label in enumerate(self.classes):
            out[f"proba_{label}"] = proba[:, i]
        if images.unread is None:
            return out
        empty = self._frame(images.unread, id_column)  # prediction and probabilities stay missing
        out.index, empty.index = images.kept_at, images.unread_at
        return pd.concat([out, empty]).sort_index(kind="stable").reset_index(drop=True)

    @staticmethod
    def _frame(images: ImageData, id_column: str | None) -> pd.DataFrame:
        """The path column (and the id column) of ``images``."""
        out = pd.DataFrame({images.path_column: images.names})
        if id_column:
            if images.table is None or id_column not in images.table.columns:
                raise DataError(f"id column '{id_column}' is not in {images.where}")
            out.insert(0, id_column, images.table[id_column].to_numpy())
        return out

    def evaluate(self, data: Any, labels: Any = None) -> dict[str, Any]:
        """Metrics on labelled images (class folders, a table with the target column, IDX/NPZ with labels)."""
        images = self.load(data, labels)
        if images.labels is None and images.table is not None and self.config.columns.target is None:
            images = self._labels_by_value(images)
        return self.score(images)

    def _labels_by_value(self, images: ImageData) -> ImageData:
        """A model trained on class folders knows no target column: a table's labels are its one column whose
        values are all training classes, else its one column named like labels (rows with no value in it dropped,
        with a warning)."""
        import warnings

        from deepmine.exceptions import DeepmineWarning

        classes = {str(c) for c in self.classes}
        found = [
            name
            for name in images.table.columns
            if images.table[name].notna().any() and images.table[name].dropna().astype(str).isin(classes).all()
        ]
        if not found:  # a column named like labels: its unknown labels are then named by encode_labels
            found = [name for name in images.table.columns if str(name).strip().lower() in LABEL_NAMES]
        if len(found) != 1:
            return images
        column = images.table[found[0]]
        keep = np.flatnonzero(column.notna().to_numpy())
        if len(keep) < len(column):
            warnings.warn(
                f"{images.where}: dropping {len(column) - len(keep)} row(s) with no value in label column '{found[0]}'",
                DeepmineWarning,
                stacklevel=3,
            )
        labelled = images.subset(keep)
        labelled.labels = column.iloc[keep].astype(str).to_numpy(dtype=object)
        labelled.table = labelled.table.drop(columns=[found[0]])
        return labelled

    def score(self, images: ImageData) -> dict[str, Any]:
        """Metrics (with the confusion matrix) on labelled images."""
        return self.scored(images)[0]

    def scored(self, images: ImageData) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """Metrics, encoded labels and class probabilities of labelled images."""
        from deepmine.evaluate.metrics import classification_metrics, confusion

        if images.labels is None:
            raise DataError(
                f"{images.where} has no labels; evaluate needs class folders, a target column (for a model trained "
                "on class folders: the one column holding only training classes) or a label file"
            )
        y = self.encode_labels(images.labels, images.where)
        proba = torch.softmax(self.outputs(images), dim=1).numpy()
        metrics: dict[str, Any] = classification_metrics(y, proba, len(self.classes))
        metrics["confusion_matrix"] = confusion(y, proba.argmax(axis=1), len(self.classes))
        metrics["rows"] = len(images)
        return metrics, y, proba

    # ---- persistence ----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the artifact folder atomically; return its path."""
        from deepmine.artifact import write_model_artifact

        fields = {
            "task": self.task,
            "classes": self.classes,
            "config": self.config.model_dump(mode="json"),
            "image": self.spec.to_dict(),
            "model": self.model_spec,
            "tabular": None
            if self.tabular is None
            else {"schema": self.tabular.schema.to_dict(), "pipeline": self.tabular.state()},
            "metrics": self.metrics,
            "history": self.history,
            "training": self.training,
        }
        return write_model_artifact(path, KIND, fields, self.model, insight=self.insight)

    @classmethod
    def load_artifact(cls, path: str | Path) -> ImagePredictor:
        """Read an artifact written by :meth:`save` (checksums verified, nothing unpickled)."""

        from deepmine.artifact import load_weights, read_insight, read_manifest
        from deepmine.nn.vision import build_image_model

        path = Path(path)
        manifest = read_manifest(path, KIND, "deepmine fit IMAGES --out")
        try:
            config = ImageRunConfig.model_validate(manifest["config"])
            spec = ImageSpec.from_dict(manifest["image"])
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(f"artifact '{path}': its image settings are incomplete ({err})") from err
        tabular = None
        if manifest.get("tabular"):
            from deepmine.data.schema import Schema
            from deepmine.features.pipeline import FeaturePipeline

            schema = Schema.from_dict(manifest["tabular"]["schema"])
            tabular = FeaturePipeline.from_state(schema, manifest["tabular"]["pipeline"])
        model = build_image_model(manifest["model"], config.model)
        load_weights(model, path)
        return cls(
            spec,
            model,
            config,
            manifest["model"],
            manifest["classes"],
            tabular=tabular,
            metrics=manifest.get("metrics"),
            history=manifest.get("history"),
            training=manifest.get("training"),
            insight=read_insight(path),
        )

    def __repr__(self) -> str:
        return f"ImagePredictor(classes={len(self.classes)}, size={self.spec.height}x{self.spec.width})"
