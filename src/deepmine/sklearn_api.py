"""scikit-learn estimators over the tabular spine: clone, get/set_params, Pipeline, GridSearchCV.

Nested settings route by prefix (skorch-style): ``module__hidden=[64]``, ``optimizer__lr=0.01``,
``trainer__patience=3``, ``preprocess__numeric_bins=0``. ``__init__`` stores arguments unchanged;
everything is validated in ``fit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from deepmine.estimator_params import RoutedParamsEstimator
from deepmine.exceptions import ConfigError, DeepmineError


class NotFittedError(DeepmineError, SklearnNotFittedError):
    """An estimator was used before ``fit``."""


ROUTED_PREFIXES = ("module", "model", "optimizer", "trainer", "preprocess", "columns", "data", "text")
TARGET = "__target__"
WEIGHT = "__sample_weight__"


class _TabularEstimator(RoutedParamsEstimator):
    _task = "auto"
    _label_lists = False  # classifiers take y as lists of labels too (multilabel)

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.15,
        epochs: int = 40,
        batch_size: int = 256,
        lr: float = 1e-3,
        optimizer: str = "adamw",
        seed: int = 42,
        progress: bool = False,
        **routed: Any,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.seed = seed
        self.progress = progress
        self._store_routed(routed)

    def _overrides(self) -> dict[str, Any]:
        overrides: dict[str, Any] = {
            "model.hidden": list(self.hidden),
            "model.dropout": self.dropout,
            "trainer.epochs": self.epochs,
            "trainer.batch_size": self.batch_size,
            "trainer.progress": self.progress,
            "trainer.checkpoint": False,
            "optimizer.lr": self.lr,
            "optimizer.name": self.optimizer,
            "seed": self.seed,
        }
        for key, value in self._routed().items():
            prefix, _, rest = key.partition("__")
            if prefix not in ROUTED_PREFIXES:
                raise ConfigError(
                    f"parameter '{key}' has an unknown prefix '{prefix}'; use one of "
                    f"{[p + '__' for p in ROUTED_PREFIXES]}"
                )
            dotted = f"{prefix}.{rest.replace('__', '.')}"
            overrides[dotted] = list(value) if isinstance(value, tuple) else value
        return overrides

    # ---- fitting and predicting --------------------------------------------------------------
    def _as_frame(self, X: Any, columns: list[str] | None = None) -> pd.DataFrame:
        """``X`` as a table; at predict time (``columns``: the fitted names) an array, or a DataFrame when the fit
        saw an array, is read by position and must have as many columns as the fit saw."""
        _refuse_sparse(X)
        if isinstance(X, pd.DataFrame) and (columns is None or not getattr(self, "fitted_on_array_", False)):
            return X.reset_index(drop=True)
        array = np.asarray(X)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise ValueError(f"X must be 2-D (rows × columns), got an array of shape {array.shape}")
        if columns is not None and len(columns) != array.shape[1]:
            raise ValueError(
                f"X has {array.shape[1]} features, but this {type(self).__name__} was fitted on {len(columns)}"
            )
        names = columns if columns is not None else [f"x{i}" for i in range(array.shape[1])]
        return pd.DataFrame(array, columns=names)

    def _check_target(self, y: np.ndarray) -> None:
        """scikit-learn's words for a target the estimator cannot learn (not the internal column name)."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _TabularEstimator:
        """Fit on features ``X`` (DataFrame or array) and target ``y``, each row's loss scaled by
        ``sample_weight`` when given (numbers >= 0, one per row); returns self."""
        from deepmine.config import build_config
        from deepmine.tasks.supervised import fit_table

        frame = self._as_frame(X)
        lists = None
        if self._label_lists:
            from deepmine.tasks.multilabel import lists_to_target

            lists = lists_to_target(y)
        y_values = lists[0] if lists else np.asarray(y)
        if y_values.ndim != 1 or len(y_values) != len(frame):
            raise ValueError(f"y must be 1-D with one value per row of X ({len(frame)}), got shape {y_values.shape}")
        if not lists:
            self._check_target(y_values)
        frame[TARGET] = y_values

        overrides = self._overrides()
        overrides["columns.target"] = TARGET
        if sample_weight is not None:
            from deepmine.tasks.row_weights import read_weights

            weights = np.asarray(sample_weight)
            if weights.ndim == 0:  # one number weighs every row alike, as in scikit-learn
                weights = np.full(len(frame), weights.item())
            if weights.shape != (len(frame),):
                raise ValueError(
                    f"sample_weight must be 1-D with one weight per row of X ({len(frame)}), got shape {weights.shape}"
                )
            # checked here, so that a bad weight is named as the caller passed it, not as the internal column
            frame[WEIGHT] = read_weights(pd.DataFrame({WEIGHT: weights}), WEIGHT, "", "sample_weight").numpy()
            overrides["columns.weight"] = WEIGHT
        overrides["task"] = "multilabel" if lists else self._resolve_task(y_values)
        if lists:
            overrides["columns.label_sep"] = lists[1]
        self.predictor_ = fit_table(frame, build_config(None, overrides))
        self.fitted_on_array_ = not isinstance(X, pd.DataFrame)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns if c not in (TARGET, WEIGHT)], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.history_ = self.predictor_.history
        return self

    def _resolve_task(self, y: np.ndarray) -> str:
        return self._task

    def _check_fitted(self) -> None:
        if not hasattr(self, "predictor_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) before predicting")

    def _frame_for_predict(self, X: Any) -> pd.DataFrame:
        self._check_fitted()
        return self._as_frame(X, list(self.feature_names_in_))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels or values, one per row of ``X``."""
        frame = self._frame_for_predict(X)  # checks fitted before predictor_ is looked up
        return self.predictor_.predict(frame)


class TabularClassifier(ClassifierMixin, _TabularEstimator):
    """MLP with categorical embeddings for classification (binary or multiclass), or multilabel when ``y`` holds
    lists of labels (MultiLabelBinarizer style): ``predict`` then returns label lists, ``predict_proba`` one
    column per label of ``classes_``."""

    _label_lists = True

    def _resolve_task(self, y: np.ndarray) -> str:
        return "binary" if len(pd.unique(pd.Series(y).dropna())) == 2 else "multiclass"

    def _check_target(self, y: np.ndarray) -> None:
        classes = pd.unique(pd.Series(y).dropna())
        if len(classes) < 2:
            raise ValueError(
                f"y has {len(classes)} class{'' if len(classes) == 1 else 'es'}"
                f"{' (' + repr(classes[0]) + ')' if len(classes) else ''}; a classifier needs at least two"
            )

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> TabularClassifier:
        super().fit(X, y, sample_weight)
        self.classes_ = np.asarray(self.predictor_.schema.classes)
        self.multilabel_ = self.predictor_.is_multilabel
        return self

    def predict(self, X: Any) -> np.ndarray:
        values = super().predict(X)
        return values if self.multilabel_ else np.asarray(values).astype(self.classes_.dtype)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy; for label lists, subset accuracy (every label of a row right)."""
        if not getattr(self, "multilabel_", False):
            return super().score(X, y, sample_weight=sample_weight)
        from sklearn.metrics import accuracy_score
        from sklearn.preprocessing import MultiLabelBinarizer

        binarizer = MultiLabelBinarizer(classes=[str(c) for c in self.classes_])
        truth = binarizer.fit_transform([[str(v) for v in labels] for labels in y])
        predicted = binarizer.transform(self.predict(X))
        return float(accuracy_score(truth, predicted, sample_weight=sample_weight))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        frame = self._frame_for_predict(X)
        return self.predictor_.predict_proba(frame)


class TabularRegressor(RegressorMixin, _TabularEstimator):
    """MLP with categorical embeddings for regression."""

    _task = "regression"

    def _check_target(self, y: np.ndarray) -> None:
        numbers = pd.to_numeric(pd.Series(y), errors="coerce")
        words = pd.Series(y)[numbers.isna() & pd.Series(y).notna()]
        if len(words):
            raise ValueError(
                f"y holds values that are not numbers, such as {words.iloc[0]!r}; TabularRegressor predicts numbers "
                "(use TabularClassifier for labels)"
            )

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(super().predict(X), dtype="float64")


class TextClassifier(TabularClassifier):
    """Classifier over raw texts: ``X`` is a list, array or Series of strings (or a one-column DataFrame).

    The text settings are parameters (``encoder``, ``tokenizer``, ``max_length``); the rest routes like the
    tabular estimators (``text__ngrams=2``, ``trainer__patience=3``)."""

    TEXT = "text"

    def __init__(
        self,
        *,
        encoder: str = "auto",
        tokenizer: str = "auto",
        max_length: int | None = None,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.3,
        epochs: int = 40,
        batch_size: int = 256,
        lr: float = 1e-3,
        optimizer: str = "adamw",
        seed: int = 42,
        progress: bool = False,
        **routed: Any,
    ) -> None:
        super().__init__(
            hidden=hidden,
            dropout=dropout,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            seed=seed,
            progress=progress,
            **routed,
        )
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = max_length

    def _overrides(self) -> dict[str, Any]:
        return {
            **super()._overrides(),
            "text.encoder": self.encoder,
            "text.tokenizer": self.tokenizer,
            "text.max_length": self.max_length,
            "columns.roles": {self.TEXT: "text"},
        }

    def _as_frame(self, X: Any, columns: list[str] | None = None) -> pd.DataFrame:
        _refuse_sparse(X)
        if isinstance(X, pd.DataFrame):
            if X.shape[1] != 1:
                raise ValueError(f"TextClassifier takes one column of texts, got a DataFrame with {X.shape[1]}")
            X = X.iloc[:, 0]
        values = np.asarray(X, dtype=object)
        if values.ndim == 2 and values.shape[1] == 1:  # a one-column array, as ColumnTransformer hands it on
            values = values[:, 0]
        if values.ndim != 1:
            raise ValueError(f"X must be a 1-D sequence of texts, got an array of shape {values.shape}")
        return pd.DataFrame({TextClassifier.TEXT: values})


def _refuse_sparse(X: Any) -> None:
    from scipy import sparse

    if sparse.issparse(X):
        raise TypeError(
            "X is a scipy sparse matrix, which deepmine estimators do not take; pass X.toarray() or a DataFrame"
        )
