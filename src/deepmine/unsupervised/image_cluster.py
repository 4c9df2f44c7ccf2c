"""`deepmine cluster` on images: a convolutional autoencoder embedding, then the same clustering as tables.

Images come from any image source deepmine reads (class folders, a table of image paths, IDX or NPZ files);
their size and channels follow the majority, as in `deepmine fit`. Labels found with the images (class
folder names, an IDX labels file, the table column named by ``label``) only score the clustering.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmine.exceptions import DeepmineWarning
from deepmine.nn.autoencoders import ConvAutoencoder
from deepmine.unsupervised.cluster import (
    ClusterResult,
    check_k,
    cluster_matrix,
    clustering_metrics,
    draw_map,
    train_embedding,
)

IMAGE_MIN_STEPS = 2000  # optimizer steps the convolutional autoencoder gets at least


def image_pixels(data: Any, label: str | None = None, seed: int = 42, read: Any = None) -> tuple[np.ndarray, Any]:
    """Every image as float32 (n, channels, height, width) in [0, 1], sides zero-padded to multiples of 4."""
    from deepmine.images.config import ImageConfig
    from deepmine.images.dataset import image_store
    from deepmine.images.sources import load_images
    from deepmine.images.transforms import decode, fit_spec

    config = ImageConfig(augment=False)
    images = load_images(data, config, target=label, read=read)
    spec = fit_spec(images, config, seed)
    store = image_store(images, spec)
    if isinstance(store, torch.Tensor):
        pixels = store.numpy()
    else:
        pixels = np.stack([decode(p, spec.channels, spec.height, spec.width, spec.resize) for p in images.paths])
    x = pixels.transpose(0, 3, 1, 2).astype("float32") / 255.0
    pad_h, pad_w = -x.shape[2] % 4, -x.shape[3] % 4
    if pad_h or pad_w:
        x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
    return np.ascontiguousarray(x), images


def embed_conv(x: np.ndarray, *, seed: int, **training: Any) -> tuple[ConvAutoencoder, np.ndarray]:
    """Train a convolutional autoencoder on images ``x`` (n, c, h, w); return it and every image's embedding."""
    torch.manual_seed(seed)
    model = ConvAutoencoder(x.shape[1], x.shape[2], x.shape[3], latent=10, filters=32)
    return model, train_embedding(model, x, seed=seed, min_steps=IMAGE_MIN_STEPS, **training)


def cluster_images(
    data: Any,
    k: int | str = "auto",
    *,
    method: str = "n2d",
    label: str | None = None,
    seed: int = 42,
    epochs: int | None = None,
    map_path: Path | None = None,
    threads: int | None = None,
    read: Any = None,
) -> tuple[ClusterResult, list[str]]:
    """Cluster images; returns the result and each image's name (its path, or its index in an array file)."""
    x, images = image_pixels(data, label, seed, read)
    check_k(k, len(x))
    result = cluster_matrix(x, k, method=method, seed=seed, epochs=epochs, threads=threads, embed=embed_conv)
    result.info = {
        "source": images.where,
        **result.info,
        "embedding": "convolutional autoencoder",
        "image_size": list(x.shape[1:]),
    }
    if label is not None:
        if images.labels is None:
            warnings.warn(
                f"{images.where} holds no labels (class folders, an IDX labels file or a label column); "
                "the clustering is not scored",
                DeepmineWarning,
                stacklevel=2,
            )
        else:
            result.metrics = clustering_metrics(np.asarray(images.labels), result.clusters)
    if map_path is not None:
        title = f"{images.where}: k={result.k}"
        result.info["map"] = str(draw_map(result.embedding, result.clusters, map_path, seed, title))
    return result, list(images.names)
