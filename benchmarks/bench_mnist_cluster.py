"""mnist-cluster: cluster the 10k MNIST test images into 10 groups without labels (labels only score).

deepmine: ``deepmine.unsupervised.image_cluster.cluster_images`` on the IDX file (the code behind
`deepmine cluster t10k-images-idx3-ubyte.gz --k 10 --label idx`): a convolutional autoencoder embedding → UMAP →
k-means refined by a Gaussian mixture (N2D). Peer: k-means on raw pixels
(scikit-learn, n_init=10), in the same run. Metrics: cluster_accuracy (Hungarian matching) and nmi.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from env_info import require_files
from targets import judge

NAME = "mnist-cluster"
TITLE = "MNIST test images (10,000), 10 clusters without labels: cluster_accuracy (Hungarian), nmi"
ACCURACY_MIN = 0.85
SEED = 0


def load() -> tuple[object, np.ndarray, np.ndarray]:
    """The IDX images file, the pixels (10000 × 784 in [0, 1], for the peer) and the labels."""
    from deepmine.data.idx import read_idx

    images, labels = require_files("mnist", ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    x = read_idx(images).reshape(10000, -1).astype("float32") / 255.0
    return images, x, read_idx(labels).astype(int)


def run(progress) -> dict[str, Any]:
    from sklearn.cluster import KMeans

    from deepmine.unsupervised.cluster import clustering_metrics
    from deepmine.unsupervised.image_cluster import cluster_images

    images, x, y = load()
    progress(f"mnist-cluster: {len(x)} images, deepmine (conv autoencoder → UMAP → k-means/GMM) ...")
    started = time.perf_counter()
    result, _ = cluster_images(images, 10, seed=SEED)
    deepmine_seconds = time.perf_counter() - started
    ours = clustering_metrics(y, result.clusters)
    progress(f"mnist-cluster: deepmine {ours} in {deepmine_seconds:.0f} s; k-means on pixels ...")
    started = time.perf_counter()
    pixels = KMeans(n_clusters=10, n_init=10, random_state=SEED).fit_predict(x)
    kmeans_seconds = time.perf_counter() - started
    peer = clustering_metrics(y, pixels)
    progress(f"mnist-cluster: k-means on pixels {peer} in {kmeans_seconds:.0f} s")
    rows = {"train": len(x), "test": len(x)}
    runs = [
        {
            "name": "deepmine cluster (conv autoencoder, n2d)",
            "metrics": ours,
            "fit_seconds": round(deepmine_seconds, 2),
            "rows": rows,
            "details": result.info,
        },
        {"name": "k-means on pixels", "metrics": peer, "fit_seconds": round(kmeans_seconds, 2), "rows": rows},
    ]
    return {
        "benchmark": NAME,
        "title": TITLE,
        "rows": rows,
        "cluster_accuracy": ours["cluster_accuracy"],
        "nmi": ours["nmi"],
        "peers": {"kmeans_pixels": peer},
        "runs": runs,
        "targets": [judge(runs[0]["name"], "cluster_accuracy", ours["cluster_accuracy"], ">=", ACCURACY_MIN)],
        "notes": [
            "mnist-cluster: labels are used only to score; fit seconds include the autoencoder, UMAP and clustering.",
        ],
    }
