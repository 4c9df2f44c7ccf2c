"""Anomaly detectors selectable by name. Every detector scores rows so that higher = more anomalous.

A detector takes a float matrix (rows × features, already encoded by the FeaturePipeline), and has
``fit(x)``, ``score(x)`` and ``fit_score(x)`` (scores of the rows it was fitted on; for k-NN this leaves each
row out of its own neighbours). Detectors that can say which features drove a score also have
``contributions(x)`` (rows × features, non-negative).

``deepmine`` (the default) is an ensemble of small dense autoencoders on robustly scaled inputs: each
member's reconstruction error and the k-NN distance in its latent space are rank-averaged over members.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from deepmine.exceptions import ConfigError, did_you_mean

T = TypeVar("T", bound=type)
_DETECTORS: dict[str, type] = {}
DEFAULT_DETECTOR = "deepmine"


def register_detector(name: str) -> Callable[[T], T]:
    """Register a detector class under ``name``; a duplicate name is a programming error."""

    def decorate(cls: T) -> T:
        if name in _DETECTORS:
            raise ValueError(f"detector '{name}' is registered twice")
        _DETECTORS[name] = cls
        return cls

    return decorate


def registered_detectors() -> list[str]:
    return sorted(_DETECTORS)


def make_detector(name: str, seed: int = 42, **options: Any) -> Any:
    """An unfitted detector by name (``deepmine``, ``autoencoder``, ``isolation_forest``, ``knn``, PyOD's …)."""
    if name not in _DETECTORS:
        raise ConfigError(
            f"unknown detector '{name}'{did_you_mean(name, _DETECTORS)}; choose one of {registered_detectors()}"
        )
    return _DETECTORS[name](seed=seed, **options)


def rank01(scores: np.ndarray) -> np.ndarray:
    """Scores → ranks in (0, 1] (ties share their mean rank), so detectors on any scale can be averaged."""
    from scipy.stats import rankdata

    return rankdata(scores) / max(len(scores), 1)


class RobustScaler:
    """Median/IQR(5–95 %) scaling, clipped to ±``clip`` so one extreme value cannot dominate a model."""

    def __init__(self, clip: float = 10.0) -> None:
        self.clip = clip

    def fit(self, x: np.ndarray) -> RobustScaler:
        self.center_ = np.median(x, axis=0)
        low, high = np.percentile(x, [5, 95], axis=0)
        spread = high - low
        std = x.std(axis=0)
        self.scale_ = np.where(spread > 1e-12, spread, np.where(std > 1e-12, std, 1.0))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.center_) / self.scale_, -self.clip, self.clip).astype("float32")


class Detector:
    """Base: ``fit_score`` = ``fit`` then ``score`` unless a detector knows better."""

    seed: int

    def fit(self, x: np.ndarray) -> Detector:  # pragma: no cover - interface
        raise NotImplementedError

    def score(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def fit_score(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x).score(x)


def _knn_distance(train: np.ndarray, query: np.ndarray | None, k: int) -> np.ndarray:
    """Distance to the k-th nearest training row; ``query=None`` scores the training rows leaving each out."""
    from sklearn.neighbors import NearestNeighbors

    k = max(1, min(k, len(train) - 1))
    index = NearestNeighbors(n_neighbors=k + (query is None)).fit(train)
    dist, _ = index.kneighbors(train if query is None else query)
    return dist[:, -1]


@register_detector("knn")
class KNNDetector(Detector):
    """Distance to the k-th nearest neighbour on standardized features (Ramaswamy et al. 2000)."""

    def __init__(self, seed: int = 42, k: int = 10) -> None:
        self.seed, self.k = seed, k

    def fit(self, x: np.ndarray) -> KNNDetector:
        self.mean_, self.std_ = x.mean(axis=0), x.std(axis=0)
        self.std_[self.std_ < 1e-12] = 1.0
        self.train_ = (x - self.mean_) / self.std_
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return _knn_distance(self.train_, (x - self.mean_) / self.std_, self.k)

    def fit_score(self, x: np.ndarray) -> np.ndarray:
        self.fit(x)
        return _knn_distance(self.train_, None, self.k)


@register_detector("isolation_forest")
class IsolationForestDetector(Detector):
    """scikit-learn's IsolationForest (Liu et al. 2008) with its defaults."""

    def __init__(self, seed: int = 42, n_estimators: int = 100) -> None:
        self.seed, self.n_estimators = seed, n_estimators

    def fit(self, x: np.ndarray) -> IsolationForestDetector:
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(x)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(x)


class _PyOD(Detector):
    """A PyOD detector (Zhao et al. 2019); ``decision_function`` is already higher = more anomalous."""

    factory: Callable[[int], Any]

    def __init__(self, seed: int = 42) -> None:
        self.seed = seed

    def fit(self, x: np.ndarray) -> _PyOD:
        self.model_ = type(self).factory(self.seed)
        self.model_.fit(x)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.decision_function(x), dtype="float64")

    def fit_score(self, x: np.ndarray) -> np.ndarray:
        self.fit(x)
        return np.asarray(self.model_.decision_scores_, dtype="float64")


def _pyod(name: str, build: Callable[[int], Any], doc: str) -> None:
    cls = type(f"PyOD_{name}", (_PyOD,), {"factory": staticmethod(build), "__doc__": doc})
    register_detector(name)(cls)


def _lof(seed: int) -> Any:
    from pyod.models.lof import LOF

    return LOF()


def _ecod(seed: int) -> Any:
    from pyod.models.ecod import ECOD

    return ECOD()


def _copod(seed: int) -> Any:
    from pyod.models.copod import COPOD

    return COPOD()


def _hbos(seed: int) -> Any:
    from pyod.models.hbos import HBOS

    return HBOS()


def _pca(seed: int) -> Any:
    from pyod.models.pca import PCA

    return PCA(random_state=seed)


def _ocsvm(seed: int) -> Any:
    from pyod.models.ocsvm import OCSVM

    return OCSVM()


_pyod("lof", _lof, "PyOD LOF: local outlier factor (Breunig et al. 2000).")
_pyod("ecod", _ecod, "PyOD ECOD: empirical-CDF outlier detection (Li et al. 2022).")
_pyod("copod", _copod, "PyOD COPOD: copula-based outlier detection (Li et al. 2020).")
_pyod("hbos", _hbos, "PyOD HBOS: histogram-based outlier score.")
_pyod("pca", _pca, "PyOD PCA: weighted distance to the principal components.")
_pyod("ocsvm", _ocsvm, "PyOD one-class SVM.")


# ---- autoencoders ---------------------------------------------------------------------------------
def _ae_sizes(features: int) -> tuple[list[int], int]:
    hidden = max(8, min(64, 2 * features))
    latent = max(2, min(16, features // 2))
    return [hidden], latent


class _AutoencoderMember:
    """One dense autoencoder on scaled inputs; keeps per-feature squared errors and latent codes."""

    def __init__(self, seed: int, epochs: int | None, batch_size: int, threads: int | None) -> None:
        self.seed, self.epochs, self.batch_size, self.threads = seed, epochs, batch_size, threads

    def fit(self, x: np.ndarray) -> _AutoencoderMember:
        from deepmine.nn.autoencoders import DenseAutoencoder
        from deepmine.unsupervised.training import epochs_for, train_autoencoder

        hidden, latent = _ae_sizes(x.shape[1])
        torch.manual_seed(self.seed)
        self.model_ = DenseAutoencoder(x.shape[1], hidden, latent)
        epochs = self.epochs or epochs_for(len(x), self.batch_size, min_steps=800, min_epochs=20, max_epochs=200)
        train_autoencoder(
            self.model_,
            torch.from_numpy(x),
            seed=self.seed,
            epochs=epochs,
            batch_size=self.batch_size,
            threads=self.threads,
        )
        return self

    def errors(self, x: np.ndarray) -> np.ndarray:
        from deepmine.nn.autoencoders import reconstruct_in_chunks

        t = torch.from_numpy(x)
        return ((reconstruct_in_chunks(self.model_, t) - t) ** 2).numpy().astype("float64")

    def latent(self, x: np.ndarray) -> np.ndarray:
        from deepmine.nn.autoencoders import encode_in_chunks

        return encode_in_chunks(self.model_, torch.from_numpy(x)).numpy().astype("float64")


@register_detector("autoencoder")
class AutoencoderDetector(Detector):
    """One dense autoencoder; the score is the mean squared reconstruction error on robustly scaled inputs."""

    members_count = 1
    latent_knn = False

    def __init__(
        self,
        seed: int = 42,
        members: int | None = None,
        epochs: int | None = None,
        batch_size: int = 256,
        k: int = 10,
        threads: int | None = None,
    ) -> None:
        self.seed, self.members, self.epochs, self.batch_size, self.k, self.threads = (
            seed,
            members,
            epochs,
            batch_size,
            k,
            threads,
        )

    def fit(self, x: np.ndarray) -> AutoencoderDetector:
        self.scaler_ = RobustScaler().fit(np.asarray(x, dtype="float64"))
        scaled = self.scaler_.transform(x)
        count = self.members or self.members_count
        self.members_ = [
            _AutoencoderMember(self.seed + 1000 * i, self.epochs, self.batch_size, self.threads).fit(scaled)
            for i in range(count)
        ]
        self.train_latent_ = [m.latent(scaled) for m in self.members_] if self.latent_knn else []
        return self

    def _scores(self, x: np.ndarray, leave_out: bool) -> np.ndarray:
        scaled = self.scaler_.transform(x)
        parts = []
        for i, member in enumerate(self.members_):
            parts.append(rank01(member.errors(scaled).mean(axis=1)))
            if self.latent_knn:
                query = None if leave_out else member.latent(scaled)
                parts.append(rank01(_knn_distance(self.train_latent_[i], query, self.k)))
        if len(parts) == 1:
            return self.members_[0].errors(scaled).mean(axis=1)
        return np.mean(parts, axis=0)

    def score(self, x: np.ndarray) -> np.ndarray:
        return self._scores(x, leave_out=False)

    def fit_score(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x)._scores(x, leave_out=True)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature squared reconstruction error, averaged over members."""
        scaled = self.scaler_.transform(x)
        return np.mean([m.errors(scaled) for m in self.members_], axis=0)


@register_detector("lstm_autoencoder")
class LSTMAutoencoderDetector(Detector):
    """Sequences as wide rows (one series per row, its numeric columns the steps in order): an LSTM
    autoencoder (Malhotra et al. 2016) rebuilds each series; the score is the mean squared reconstruction
    error, and each step's error is its contribution."""

    def __init__(
        self,
        seed: int = 42,
        epochs: int | None = None,
        batch_size: int = 64,
        hidden: int = 32,
        latent: int = 8,
        threads: int | None = None,
    ) -> None:
        self.seed, self.epochs, self.batch_size, self.threads = seed, epochs, batch_size, threads
        self.hidden, self.latent = hidden, latent

    def _series(self, x: np.ndarray) -> torch.Tensor:
        scaled = (np.asarray(x, dtype="float64") - self.center_) / self.scale_
        return torch.from_numpy(scaled.astype("float32")).unsqueeze(-1)  # (rows, steps, 1)

    def fit(self, x: np.ndarray) -> LSTMAutoencoderDetector:
        from deepmine.nn.autoencoders import LSTMAutoencoder
        from deepmine.unsupervised.training import epochs_for, train_autoencoder

        x = np.asarray(x, dtype="float64")
        self.center_, spread = float(np.median(x)), float(np.std(x))  # one scale for all steps keeps the shape
        self.scale_ = spread if spread > 1e-12 else 1.0
        torch.manual_seed(self.seed)
        self.model_ = LSTMAutoencoder(1, self.hidden, self.latent)
        epochs = self.epochs or epochs_for(len(x), self.batch_size, min_steps=600, min_epochs=20, max_epochs=300)
        train_autoencoder(
            self.model_,
            self._series(x),
            seed=self.seed,
            epochs=epochs,
            batch_size=self.batch_size,
            lr=3e-3,
            threads=self.threads,
        )
        return self

    def contributions(self, x: np.ndarray) -> np.ndarray:
        from deepmine.nn.autoencoders import reconstruct_in_chunks

        series = self._series(x)
        return ((reconstruct_in_chunks(self.model_, series) - series) ** 2).squeeze(-1).numpy().astype("float64")

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.contributions(x).mean(axis=1)


class QuantileNormalScaler:
    """Each feature mapped to normal scores of its training quantiles (scikit-learn's QuantileTransformer),
    then standardized: a copula view in which heavy tails and skew no longer dominate distances."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def fit(self, x: np.ndarray) -> QuantileNormalScaler:
        from sklearn.preprocessing import QuantileTransformer

        self.model_ = QuantileTransformer(
            output_distribution="normal", n_quantiles=min(1000, len(x)), random_state=self.seed
        ).fit(x)
        q = self.model_.transform(x)
        self.mean_, std = q.mean(axis=0), q.std(axis=0)
        self.std_ = np.where(std > 1e-9, std, 1.0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((self.model_.transform(x) - self.mean_) / self.std_).astype("float32")


def _mahalanobis(train: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of ``query`` rows under the mean and covariance of ``train``."""
    center = train.mean(axis=0)
    cov = np.atleast_2d(np.cov(train - center, rowvar=False)) + 1e-6 * np.eye(train.shape[1])
    diff = query - center
    return np.einsum("ij,jk,ik->i", diff, np.linalg.pinv(cov), diff)


class _Calibrated:
    """A component score turned into its empirical CDF over the training rows (so components average fairly)."""

    def __init__(self, train_scores: np.ndarray) -> None:
        self.sorted_ = np.sort(train_scores)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.sorted_, scores, side="right") / len(self.sorted_)


@register_detector("deepmine")
class DeepmineDetector(Detector):
    """deepmine's default: an ensemble, each part's score mapped to its empirical CDF over the training rows
    and averaged with a weight. Parts:

    - ``isolation``: Isolation Forest path lengths in the input space (scikit-learn),
    - ``tails``: ECOD's per-feature tail probabilities in the input space (PyOD),
    - ``latent``: Mahalanobis distance in the latent space of dense autoencoders (robustly scaled inputs),
    - ``reconstruction``: autoencoder reconstruction error on quantile-normal inputs.

    The default weights were chosen by the mean ROC-AUC over all ODDS sets (never per set, never with labels
    at fit time). Every mix with an autoencoder part scored a lower mean than the mix without one (see the
    README), so the autoencoder parts are off by default; ``weights={"latent": 1, ...}`` turns them on.
    """

    WEIGHTS = {"isolation": 1.0, "tails": 1.0, "latent": 0.0, "reconstruction": 0.0}

    def __init__(
        self,
        seed: int = 42,
        members: int = 3,
        epochs: int | None = None,
        batch_size: int = 256,
        threads: int | None = None,
        weights: dict[str, float] | None = None,
    ) -> None:
        self.seed, self.members, self.epochs, self.batch_size, self.threads = (
            seed,
            members,
            epochs,
            batch_size,
            threads,
        )
        self.weights = weights

    def _members(self, x: np.ndarray, offset: int) -> list[_AutoencoderMember]:
        return [
            _AutoencoderMember(self.seed + offset + 1000 * i, self.epochs, self.batch_size, self.threads).fit(x)
            for i in range(self.members)
        ]

    def _raw(self, x: np.ndarray) -> dict[str, np.ndarray]:
        weights = self.weights_
        out: dict[str, np.ndarray] = {}
        if weights.get("latent"):
            r = self.robust_.transform(x)
            out["latent"] = np.mean(
                [_mahalanobis(z, m.latent(r)) for z, m in zip(self.latent_train_, self.robust_members_, strict=True)],
                axis=0,
            )
        if weights.get("reconstruction"):
            q = self.quantile_.transform(x)
            out["reconstruction"] = np.mean([m.errors(q).mean(axis=1) for m in self.quantile_members_], axis=0)
        if weights.get("tails"):
            out["tails"] = np.asarray(self.ecod_.decision_function(x), dtype="float64")
        if weights.get("isolation"):
            out["isolation"] = -self.forest_.score_samples(x)
        return out

    def fit(self, x: np.ndarray) -> DeepmineDetector:
        x = np.asarray(x, dtype="float64")
        self.weights_ = {k: float(v) for k, v in (self.weights or self.WEIGHTS).items() if v}
        unknown = set(self.weights_) - set(self.WEIGHTS)
        if not self.weights_:
            raise ConfigError(
                f"the deepmine detector needs at least one part with a weight; parts: {list(self.WEIGHTS)}"
            )
        if unknown:
            raise ConfigError(f"unknown parts {sorted(unknown)} of the deepmine detector; known: {list(self.WEIGHTS)}")
        self.robust_ = RobustScaler().fit(x)
        self.quantile_ = QuantileNormalScaler(self.seed).fit(x)
        self.robust_members_, self.latent_train_, self.quantile_members_ = [], [], []
        if self.weights_.get("latent"):
            r = self.robust_.transform(x)
            self.robust_members_ = self._members(r, 0)
            self.latent_train_ = [m.latent(r) for m in self.robust_members_]
        if self.weights_.get("reconstruction"):
            self.quantile_members_ = self._members(self.quantile_.transform(x), 7)
        if self.weights_.get("tails"):
            from pyod.models.ecod import ECOD

            self.ecod_ = ECOD().fit(x)
        if self.weights_.get("isolation"):
            from sklearn.ensemble import IsolationForest

            self.forest_ = IsolationForest(random_state=self.seed).fit(x)
        self.calibration_ = {name: _Calibrated(s) for name, s in self._raw(x).items()}
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype="float64")
        parts = self._raw(x)
        total = sum(self.weights_[name] for name in parts)
        return sum(self.weights_[name] * self.calibration_[name](s) for name, s in parts.items()) / total

    def contributions(self, x: np.ndarray) -> np.ndarray | None:
        """Per-feature squared reconstruction error of the quantile-normal autoencoders (None without them)."""
        if not self.quantile_members_:
            return None
        q = self.quantile_.transform(np.asarray(x, dtype="float64"))
        return np.mean([m.errors(q) for m in self.quantile_members_], axis=0)
