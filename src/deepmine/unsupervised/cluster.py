"""`deepmine cluster`: learn an embedding, cluster it, describe the clusters, draw a 2-D map.

Embedding: a dense autoencoder for tables (a convolutional one for images: :mod:`.image_cluster`).
Clustering (``method``):

- ``n2d`` (default): the autoencoder's embedding → UMAP to a few dimensions → k-means, refined by a Gaussian
  mixture started from the k-means centres (McConville et al. 2020, "N2D").
- ``dec``: k-means on the embedding, then DEC refinement (Xie et al. 2016): encoder and centres are trained
  together to sharpen the soft assignments towards their target distribution.

``k="auto"`` picks k by the silhouette score on the clustering space. With labels, ``cluster_accuracy``
(best one-to-one matching of clusters to labels, Hungarian algorithm) and ``nmi`` score the result.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepmine.config import DataConfig
from deepmine.data.sources import DataSource, describe, load_table
from deepmine.exceptions import ConfigError, DataError, DeepmineWarning
from deepmine.nn.autoencoders import DenseAutoencoder, encode_in_chunks
from deepmine.train.seeding import seed_everything
from deepmine.unsupervised.tabular import Encoded, check_column, encode_table
from deepmine.unsupervised.training import epochs_for, train_autoencoder

METHODS = ("n2d", "dec")
AUTO_K_MAX = 10


# ---- scoring -------------------------------------------------------------------------------------
MAX_LABEL_CLASSES = 50  # a --label with more distinct values than this (and 4 × k) is hardly a class


def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of rows whose cluster maps to their label under the best one-to-one matching (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    labels = pd.factorize(pd.Series(labels).astype(str))[0]
    clusters = pd.factorize(pd.Series(clusters))[0]
    table = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(table, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(labels))


def clustering_metrics(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import normalized_mutual_info_score

    return {
        "cluster_accuracy": cluster_accuracy(labels, clusters),
        "nmi": float(normalized_mutual_info_score(pd.Series(labels).astype(str), clusters)),
    }


# ---- checks --------------------------------------------------------------------------------------
def check_k(k: int | str, rows: int) -> int | None:
    """``k`` as an int (None for ``auto``); a clear error when it cannot work with ``rows`` rows."""
    if isinstance(k, str):
        if k.strip().lower() == "auto":
            if rows < 3:
                raise DataError(f"--k auto needs at least 3 rows to compare clusterings, got {rows}")
            return None
        try:
            k = int(k)
        except ValueError:
            raise ConfigError(f"--k expects a whole number of clusters or 'auto', got {k!r}") from None
    if k < 2:
        raise ConfigError(f"--k must be at least 2 (got {k}); or use --k auto")
    if k > rows:
        raise ConfigError(f"--k {k} is larger than the number of rows ({rows}); choose k ≤ {rows} or --k auto")
    return int(k)


# ---- embedding -----------------------------------------------------------------------------------
def _dense_sizes(features: int) -> tuple[list[int], int]:
    if features >= 256:  # images and other wide inputs (a narrower cousin of DEC's 500-500-2000, for CPUs)
        return [256, 64], 10
    hidden = max(16, min(128, 4 * features))
    return [hidden, hidden], max(2, min(10, features))


def train_embedding(
    model: nn.Module,
    x: np.ndarray,
    *,
    seed: int,
    min_steps: int,
    epochs: int | None = None,
    batch_size: int = 256,
    threads: int | None = None,
    progress: bool | None = False,
) -> np.ndarray:
    """Train the autoencoder ``model`` on ``x`` (at least ``min_steps`` steps unless ``epochs`` is given) and
    return the embedding of every row."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype="float32"))
    epochs = epochs or epochs_for(len(x), batch_size, min_steps=min_steps, min_epochs=20, max_epochs=300)
    train_autoencoder(model, t, seed=seed, epochs=epochs, batch_size=batch_size, threads=threads, progress=progress)
    return encode_in_chunks(model, t).numpy().astype("float64")


def embed_dense(x: np.ndarray, *, seed: int, **training: Any) -> tuple[DenseAutoencoder, np.ndarray]:
    """Train a dense autoencoder on ``x`` (rows × features) and return it with the embedding of every row."""
    hidden, latent = _dense_sizes(x.shape[1])
    torch.manual_seed(seed)
    model = DenseAutoencoder(x.shape[1], hidden, latent)
    wide = x.shape[1] >= 256  # images: the embedding needs more steps to separate look-alike classes
    return model, train_embedding(model, x, seed=seed, min_steps=4000 if wide else 1500, **training)


# ---- clustering ----------------------------------------------------------------------------------
def _umap(z: np.ndarray, dims: int, seed: int, neighbors: int = 20, min_dist: float = 0.0) -> np.ndarray:
    import umap

    neighbors = max(2, min(neighbors, len(z) - 1))
    dims = max(1, min(dims, len(z) - 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's notes about n_jobs with a fixed random_state
        reducer = umap.UMAP(n_components=dims, n_neighbors=neighbors, min_dist=min_dist, random_state=seed)
        return reducer.fit_transform(z).astype("float64")


def _kmeans_gmm(space: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means, then a full-covariance Gaussian mixture started from its centres; returns (labels, centres)."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(space)
    if len(space) < 5 * k:
        return km.labels_, km.cluster_centers_
    gmm = GaussianMixture(k, covariance_type="full", means_init=km.cluster_centers_, random_state=seed, reg_covar=1e-4)
    labels = gmm.fit(space).predict(space)
    if len(np.unique(labels)) < len(np.unique(km.labels_)):
        return km.labels_, km.cluster_centers_
    return labels, gmm.means_


def choose_k(space: np.ndarray, seed: int, k_max: int = AUTO_K_MAX) -> tuple[int, dict[int, float]]:
    """The k in 2..k_max with the highest silhouette score of k-means on ``space``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    k_max = max(2, min(k_max, len(space) - 1))
    scores: dict[int, float] = {}
    sample = min(len(space), 5000)
    for k in range(2, k_max + 1):
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(space)
        if len(np.unique(labels)) < 2:
            continue
        scores[k] = float(silhouette_score(space, labels, sample_size=sample, random_state=seed))
    if not scores:
        raise DataError("every clustering put all rows in one group; the rows may be identical")
    return max(scores, key=lambda kk: scores[kk]), scores


class DECHead(nn.Module):
    """The encoder plus cluster centres; outputs Student's t soft assignments q (rows × k)."""

    def __init__(self, encoder: nn.Module, centers: np.ndarray, alpha: float = 1.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.centers = nn.Parameter(torch.tensor(centers, dtype=torch.float32))
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        q = (1.0 + torch.cdist(z, self.centers) ** 2 / self.alpha) ** (-(self.alpha + 1) / 2)
        return q / q.sum(dim=1, keepdim=True)


class KLToTarget(nn.Module):
    """KL(P ‖ Q) between the target distribution (the batch target) and the soft assignments."""

    def forward(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return nn.functional.kl_div(torch.log(q.clamp_min(1e-12)), p, reduction="batchmean")


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    weight = q**2 / q.sum(dim=0)
    return weight / weight.sum(dim=1, keepdim=True)


def dec_refine(
    model: DenseAutoencoder,
    x: np.ndarray,
    centers: np.ndarray,
    *,
    seed: int,
    rounds: int = 8,
    epochs_per_round: int = 2,
    batch_size: int = 256,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """DEC: alternate computing the target distribution P and training encoder + centres on KL(P‖Q)."""
    from deepmine.config import OptimizerConfig, TrainerConfig
    from deepmine.predictor import forward_in_chunks
    from deepmine.train.trainer import Trainer

    head = DECHead(model.encoder, centers)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype="float32"))
    generator = torch.Generator().manual_seed(seed)
    config = TrainerConfig(
        epochs=epochs_per_round,
        batch_size=max(1, min(batch_size, len(x))),
        early_stopping=False,
        checkpoint=False,
        progress=False,
        threads=threads,
    )
    trainer = Trainer(
        head, KLToTarget(), config, OptimizerConfig(name="adam", lr=1e-4, weight_decay=0.0), generator=generator
    )
    previous = None
    for _ in range(rounds):
        q = forward_in_chunks(head, [t])
        labels = q.argmax(dim=1).numpy()
        if previous is not None and np.mean(labels != previous) < 0.001:
            break
        previous = labels
        trainer.history = []
        trainer.fit([t], target_distribution(q))
    q = forward_in_chunks(head, [t])
    return q.argmax(dim=1).numpy(), encode_in_chunks(model, t).numpy().astype("float64")


@dataclass
class ClusterResult:
    """A cluster per row, sizes, profiles, the clustering space and (with labels) the scores."""

    clusters: np.ndarray
    k: int
    embedding: np.ndarray
    sizes: dict[str, int]
    profiles: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {**self.info, "k": self.k, "sizes": self.sizes, **self.metrics, "profiles": self.profiles}


def cluster_matrix(
    x: np.ndarray,
    k: int | str = "auto",
    *,
    method: str = "n2d",
    seed: int = 42,
    epochs: int | None = None,
    threads: int | None = None,
    progress: bool | None = False,
    embed: Any = None,
) -> ClusterResult:
    """Cluster the rows of a float array (already scaled); see the module docstring. ``embed`` learns the
    embedding (default :func:`embed_dense`; :func:`~deepmine.unsupervised.image_cluster.embed_conv` for images)."""
    if method not in METHODS:
        raise ConfigError(f"unknown clustering method '{method}'; choose one of {list(METHODS)}")
    rows = len(x)
    wanted = check_k(k, rows)
    if rows < 2:
        raise DataError(f"clustering needs at least 2 rows, got {rows}")
    distinct = len(np.unique(x.reshape(rows, -1).round(9), axis=0))
    if distinct < 2:
        raise DataError("every row holds the same values; there is nothing to cluster")
    if wanted is not None and wanted > distinct:
        raise ConfigError(
            f"--k {wanted} is larger than the number of distinct rows ({distinct}); choose k ≤ {distinct}"
        )
    seed_everything(seed)
    started = time.perf_counter()
    model, z = (embed or embed_dense)(x, seed=seed, epochs=epochs, threads=threads, progress=progress)
    embed_seconds = time.perf_counter() - started
    space = _umap(z, dims=wanted or AUTO_K_MAX, seed=seed) if method == "n2d" and rows > 20 else z
    silhouettes: dict[int, float] = {}
    if wanted is None:
        wanted, silhouettes = choose_k(space, seed, min(AUTO_K_MAX, distinct))
    if method == "n2d":
        clusters, _ = _kmeans_gmm(space, wanted, seed)
    else:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=wanted, n_init=10, random_state=seed).fit(z)
        clusters, space = dec_refine(model, x, km.cluster_centers_, seed=seed, threads=threads)
    clusters = pd.factorize(clusters, sort=False)[0]  # 0.. in order of first appearance
    sizes = {str(c): int(n) for c, n in zip(*np.unique(clusters, return_counts=True), strict=True)}
    info = {
        "rows": rows,
        "method": method,
        "embedding_dim": int(z.shape[1]),
        "embed_seconds": round(embed_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if silhouettes:
        info["silhouette"] = {str(kk): round(v, 4) for kk, v in silhouettes.items()}
    return ClusterResult(clusters, wanted, space, sizes, info=info)


def profiles(frame: pd.DataFrame, encoded: Encoded, clusters: np.ndarray, top: int = 3) -> list[dict[str, Any]]:
    """Per cluster: the features whose values differ most from the whole table (numbers: mean shift in
    standard deviations; categories: the value most over-represented, as a lift over its overall share)."""
    out = []
    numeric = [c for c in encoded.columns if c in encoded.pipeline.numeric]
    categorical = [c for c in encoded.columns if c in encoded.pipeline.categorical]
    for c in np.unique(clusters):
        inside = clusters == c
        found: list[dict[str, Any]] = []
        for name in numeric:
            values = pd.to_numeric(frame[name], errors="coerce")
            std = float(values.std()) or 1.0
            shift = (float(values[inside].mean()) - float(values.mean())) / std
            found.append(
                {"column": name, "mean": float(values[inside].mean()), "overall": float(values.mean()), "z": shift}
            )
        for name in categorical:
            keys = frame[name].astype(str)
            share_in = keys[inside].value_counts(normalize=True)
            share_all = keys.value_counts(normalize=True)
            lift = (share_in / share_all.reindex(share_in.index)).sort_values(ascending=False)
            value = lift.index[0]
            found.append(
                {
                    "column": name,
                    "value": value,
                    "share": float(share_in[value]),
                    "overall": float(share_all[value]),
                    # a comparable strength: how far the share moved, in binomial standard deviations
                    "z": float(
                        (share_in[value] - share_all[value])
                        / max(np.sqrt(share_all[value] * (1 - share_all[value])), 1e-9)
                    ),
                }
            )
        found.sort(key=lambda item: -abs(item["z"]))
        out.append({"cluster": int(c), "size": int(inside.sum()), "features": found[:top]})
    return out


def draw_map(embedding: np.ndarray, clusters: np.ndarray, path: Path, seed: int, title: str = "") -> Path:
    """A 2-D UMAP of ``embedding`` coloured by cluster, written as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = embedding if embedding.shape[1] == 2 else _umap(embedding, 2, seed, min_dist=0.1)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    scatter = ax.scatter(points[:, 0], points[:, 1], c=clusters, s=4, cmap="tab10" if clusters.max() < 10 else "tab20")
    ax.legend(*scatter.legend_elements(), title="cluster", loc="best", fontsize="small", markerscale=1.5)
    ax.set_title(title or "clusters (UMAP of the embedding)")
    ax.set_xticks([])
    ax.set_yticks([])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def cluster_table(
    data: DataSource,
    k: int | str = "auto",
    *,
    method: str = "n2d",
    label: str | None = None,
    id_column: str | None = None,
    seed: int = 42,
    epochs: int | None = None,
    map_path: Path | None = None,
    data_config: DataConfig | None = None,
    threads: int | None = None,
) -> ClusterResult:
    """Cluster the rows of a table (the label column, if named, is left out and only used to score)."""
    where = describe(data)
    frame = load_table(data, data_config).reset_index(drop=True)
    check_column(frame, label, where, "--label")
    check_column(frame, id_column, where, "--id")
    check_k(k, len(frame))
    encoded = encode_table(frame, where, exclude=[label], id_column=id_column)
    result = cluster_matrix(encoded.x, k, method=method, seed=seed, epochs=epochs, threads=threads)
    result.info = {"source": where, **result.info, "columns": encoded.columns}
    result.profiles = profiles(frame, encoded, result.clusters)
    if label is not None:
        known = frame[label].notna().to_numpy()
        if known.sum() < len(frame):
            warnings.warn(
                f"{where}: scoring on the {int(known.sum())} rows with a label", DeepmineWarning, stacklevel=2
            )
        classes = frame[label][known].nunique()
        if classes > max(MAX_LABEL_CLASSES, 4 * result.k):
            warnings.warn(
                f"--label '{label}' has {classes} distinct values against {result.k} clusters: cluster accuracy "
                "matches clusters to classes, so a label of this many values (a measurement?) scores near 0",
                DeepmineWarning,
                stacklevel=2,
            )
        result.metrics = clustering_metrics(frame[label].to_numpy()[known], result.clusters[known])
    if map_path is not None:
        result.info["map"] = str(draw_map(result.embedding, result.clusters, map_path, seed, f"{where}: k={result.k}"))
    return result
