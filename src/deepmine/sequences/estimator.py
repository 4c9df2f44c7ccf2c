"""``SequenceClassifier``: a scikit-learn estimator over arrays shaped (n, steps) or (n, steps, channels).

Trailing NaN marks a shorter series (masked); inner NaN is interpolated. Settings: ``model``, ``epochs``,
``seed``, a YAML/dict ``config``, and any config field routed by prefix (``model__hidden=64``,
``trainer__batch_size=128``, ``sequence__normalize="global"``), so ``clone`` and ``GridSearchCV`` work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin

from deepmine.estimator_params import RoutedParamsEstimator

ROUTED = ("model", "optimizer", "trainer", "sequence")


class SequenceClassifier(ClassifierMixin, RoutedParamsEstimator):
    """Sequence classification with deepmine's sequence networks (default: an ensemble of 1-D ResNets)."""

    def __init__(
        self,
        model: str = "auto",
        *,
        epochs: int | None = None,
        seed: int = 42,
        config: Any = None,
        progress: bool = False,
        **routed: Any,
    ) -> None:
        self.model = model
        self.epochs = epochs
        self.seed = seed
        self.config = config
        self.progress = progress
        self._store_routed(routed)

    def _run_config(self):
        from deepmine.config import build_config
        from deepmine.exceptions import ConfigError
        from deepmine.sequences.config import SequenceRunConfig

        overrides: dict[str, Any] = {"seed": self.seed, "task": "classification", "trainer.progress": self.progress}
        if self.model != "auto" or self.config is None:
            overrides["model.name"] = self.model
        if self.epochs is not None:
            overrides["trainer.epochs"] = self.epochs
        for key, value in self._routed().items():
            if key.split("__")[0] not in ROUTED:
                raise ConfigError(f"unknown setting '{key}'; routed settings start with {', '.join(ROUTED)}")
            overrides[key.replace("__", ".")] = value
        return build_config(self.config, overrides, schema=SequenceRunConfig, aliases={})

    def fit(self, X: Any, y: Any) -> SequenceClassifier:
        from deepmine.tasks.sequence import fit_sequences

        labels = np.asarray(y)
        self.predictor_ = fit_sequences(np.asarray(X, dtype=np.float64), labels, self._run_config())
        given = {str(label): label for label in labels.tolist()}  # the artifact keeps classes as text
        self.classes_ = np.asarray([given[name] for name in self.predictor_.classes_], dtype=labels.dtype)
        return self

    def _check(self) -> None:
        if not hasattr(self, "predictor_"):
            from deepmine.sklearn_api import NotFittedError

            raise NotFittedError("this SequenceClassifier is not fitted yet; call fit(X, y) first")

    def predict(self, X: Any) -> np.ndarray:
        """Labels of the kind ``y`` held (ints stay ints), so scikit-learn's scorers compare them."""
        proba = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[proba.argmax(axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        self._check()
        return self.predictor_.predict_proba(np.asarray(X, dtype=np.float64))

    def save(self, path: Any) -> Any:
        """Write the fitted model as an artifact folder (``deepmine.load`` reads it back)."""
        self._check()
        return self.predictor_.save(path)
