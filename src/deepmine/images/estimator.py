"""ImageClassifier: a scikit-learn estimator over the image spine (clone, get/set_params, Pipeline, GridSearchCV).

``X`` is an array shaped (n, height, width) or (n, height, width, channels) — uint8 pixels, or floats in [0, 1] —
or a list of image paths. Nested settings route by prefix: ``module__width=16``, ``optimizer__lr=1e-3``,
``trainer__patience=3``, ``images__shift=0``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin

from deepmine.estimator_params import RoutedParamsEstimator
from deepmine.exceptions import ConfigError

ROUTED_PREFIXES = ("module", "model", "optimizer", "trainer", "images")


class ImageClassifier(ClassifierMixin, RoutedParamsEstimator):
    """A CNN image classifier (the default VGG-style net, ``model="classic"``, or ``layers=[...]``)."""

    def __init__(
        self,
        *,
        model: str = "auto",
        layers: list[str] | None = None,
        epochs: int = 15,
        batch_size: int = 128,
        lr: float = 3e-3,
        seed: int = 42,
        progress: bool = False,
        **routed: Any,
    ) -> None:
        self.model = model
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.progress = progress
        self._store_routed(routed)

    def _config(self):
        from deepmine.images.config import build_image_config

        overrides: dict[str, Any] = {
            "model.name": self.model,
            "model.layers": list(self.layers) if self.layers is not None else None,
            "trainer.epochs": self.epochs,
            "trainer.batch_size": self.batch_size,
            "trainer.progress": self.progress,
            "trainer.checkpoint": False,
            "optimizer.lr": self.lr,
            "seed": self.seed,
        }
        for key, value in self._routed().items():
            prefix, _, rest = key.partition("__")
            if prefix not in ROUTED_PREFIXES:
                raise ConfigError(
                    f"parameter '{key}' has an unknown prefix '{prefix}'; use one of "
                    f"{[p + '__' for p in ROUTED_PREFIXES]}"
                )
            overrides[f"{prefix}.{rest.replace('__', '.')}"] = list(value) if isinstance(value, tuple) else value
        return build_image_config(None, overrides)

    @staticmethod
    def _as_input(X: Any) -> Any:
        if isinstance(X, list | tuple):
            return list(X)
        return np.asarray(X)

    def fit(self, X: Any, y: Any) -> ImageClassifier:
        """Fit on images ``X`` and labels ``y``; returns self."""
        from deepmine.images.task import fit_images

        self.predictor_ = fit_images(self._as_input(X), self._config(), labels=np.asarray(y))
        self.classes_ = np.asarray(self.predictor_.classes)
        self.history_ = self.predictor_.history
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "predictor_"):
            from deepmine.sklearn_api import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) before predicting")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        self._check_fitted()
        return self.predictor_.predict_proba(self._as_input(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each image."""
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
