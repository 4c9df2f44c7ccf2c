"""Batch sources over images for the Trainer: in-memory uint8 arrays, or files decoded lazily per batch
(DataLoader workers optional), or an on-disk cache of resized images (a NumPy memmap)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deepmine.images.sources import ImageData
from deepmine.images.transforms import ImageSpec, conform_array, decode, prepare_batch
from deepmine.train.batches import Batch, batch_indices


class FileBatches(Dataset):
    """Decodes the images of one index batch (what DataLoader workers run)."""

    def __init__(self, paths: Sequence[Path], spec: ImageSpec) -> None:
        self.paths = list(paths)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        s = self.spec
        return torch.from_numpy(
            np.stack([decode(self.paths[int(i)], s.channels, s.height, s.width, s.resize) for i in index])
        )


def image_store(data: ImageData, spec: ImageSpec, cache: Path | None = None) -> torch.Tensor | FileBatches:
    """uint8 pixels for ``data``: a tensor for arrays (or a memmap cache of decoded files), else a lazy decoder."""
    if data.array is not None:
        return torch.from_numpy(conform_array(data.array, spec))
    if cache is not None:
        return torch.from_numpy(cached_pixels(data, spec, cache))
    return FileBatches(data.paths, spec)


def decoded(data: ImageData, spec: ImageSpec) -> np.ndarray:
    """All of ``data`` as uint8 (images, h, w, c) pixels at ``spec``'s size, decoded as prediction decodes them."""
    return image_store(data, spec)[torch.arange(len(data))].numpy()


def cached_pixels(data: ImageData, spec: ImageSpec, folder: Path) -> np.ndarray:
    """Decode every file once into ``folder``/<key>.u8 (a memmap) and reuse it while it matches."""
    key = hashlib.sha256(
        repr((spec.height, spec.width, spec.channels, spec.resize, [str(p) for p in data.paths])).encode()
    ).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.u8"
    shape = (len(data), spec.height, spec.width, spec.channels)
    if path.exists() and path.stat().st_size == int(np.prod(shape)):
        return np.memmap(path, dtype=np.uint8, mode="c", shape=shape)
    tmp = path.with_suffix(".tmp")
    pixels = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
    for i, file in enumerate(data.paths):
        pixels[i] = decode(file, spec.channels, spec.height, spec.width, spec.resize)
    pixels.flush()
    del pixels
    tmp.replace(path)
    return np.memmap(path, dtype=np.uint8, mode="c", shape=shape)


class ImageBatches:
    """A BatchSource: shuffled (training) or ordered batches of ``[images, *tabular]`` and class indices.

    Training batches are augmented on the batch tensor with the Trainer's generator, so one seed fixes them."""

    def __init__(
        self,
        store: torch.Tensor | FileBatches,
        target: torch.Tensor | None,
        spec: ImageSpec,
        batch_size: int | str,
        *,
        tabular: Sequence[torch.Tensor] = (),
        train: bool = True,
        workers: int = 0,
        channels_last: bool = False,
    ) -> None:
        self.store = store
        self.target = target
        self.spec = spec
        self.rows = len(store)
        self.batch_size = self.rows if batch_size == "full" else max(1, min(int(batch_size), self.rows))
        self.tabular = list(tabular)
        self.train = train
        self.workers = workers
        self.channels_last = channels_last

    def steps(self) -> int:
        return len(batch_indices(self.rows, self.batch_size, torch.Generator().manual_seed(0), shuffle=False))

    def _pixels(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        if isinstance(self.store, torch.Tensor):
            for idx in batches:
                yield self.store[idx]
            return
        if self.workers:
            from deepmine.tracking import settle

            settle()  # no background thread mid-operation while the workers fork
        loader = DataLoader(  # its own generator: the global RNG (dropout masks) is left alone
            self.store, batch_size=None, sampler=batches, num_workers=self.workers, generator=torch.Generator()
        )
        yield from loader

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[Batch]:
        shuffle = self.train and generator is not None
        batches = batch_indices(self.rows, self.batch_size, generator or torch.Generator(), shuffle=shuffle)
        augment = generator if self.train else None
        for idx, pixels in zip(batches, self._pixels(batches), strict=True):
            x = prepare_batch(pixels, self.spec, augment, self.channels_last)
            target = self.target[idx] if self.target is not None else torch.zeros(len(idx), dtype=torch.long)
            yield [x, *(t[idx] for t in self.tabular)], target
