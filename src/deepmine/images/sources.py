"""Image sources: class folders, tables with an image-path column, IDX files and NPZ arrays.

Everything becomes an :class:`ImageData`: either an in-memory uint8 array (IDX, NPZ, arrays from Python) or a
list of image files that are decoded lazily. Unreadable files are found by :func:`scan_files` and skipped with one
warning (or stop the run with ``strict``).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepmine.exceptions import ColumnError, DataError, DeepmineWarning, SourceNotFoundError, did_you_mean

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json", ".gz")
IDX_IMAGES = re.compile(r"idx3-ubyte(\.gz)?$")
SHOWN_SKIPPED = 5


@dataclass
class ImageData:
    """Images with optional labels: ``array`` (n, h, w, c) uint8, or ``paths`` decoded on demand.

    ``names`` identify each image in predictions (the path as written in the table, or relative to the folder);
    ``table`` holds the other columns of a table source (for image + tabular models)."""

    where: str
    names: list[str]
    labels: np.ndarray | None = None
    array: np.ndarray | None = None
    paths: list[Path] | None = None
    table: pd.DataFrame | None = None
    modes: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)
    path_column: str = "path"
    # after a scan that skipped files: the input positions of the rows kept, and the unreadable rows themselves
    # (with their input positions), so a prediction can keep one row per input row
    kept_at: np.ndarray | None = None
    unread: ImageData | None = None
    unread_at: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: np.ndarray) -> ImageData:
        """The rows ``index`` (in that order)."""
        return ImageData(
            self.where,
            [self.names[i] for i in index],
            None if self.labels is None else self.labels[index],
            None if self.array is None else self.array[index],
            None if self.paths is None else [self.paths[i] for i in index],
            None if self.table is None else self.table.iloc[index].reset_index(drop=True),
            self.modes,
            self.sizes,
            self.skipped,
            self.path_column,
        )


# ---- detection (cheap: no decoding) ---------------------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def is_idx(path: Path) -> bool:
    return bool(IDX_IMAGES.search(path.name))


def looks_like_paths(values: pd.Series) -> bool:
    """Whether most non-empty values of a column end in an image file suffix."""
    text = values.dropna().astype(str).str.strip().str.lower()
    if text.empty or not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return False
    return bool(text.str.endswith(IMAGE_SUFFIXES).mean() >= 0.9)


def path_column(frame: pd.DataFrame, configured: str | None, where: str) -> str | None:
    """The configured image-path column (checked), else the first column that holds image paths."""
    if configured is not None:
        if configured not in frame.columns:
            raise ColumnError(
                f"image path column '{configured}' is not in {where}{did_you_mean(configured, frame.columns)}; "
                f"columns: {list(frame.columns)}"
            )
        return configured
    for name in frame.columns:
        if looks_like_paths(frame[name].head(200)):
            return str(name)
    return None


def is_image_source(data: Any, path_column_name: str | None = None) -> bool:
    """True for an image folder, an IDX/NPZ file, an array, or a table with an image-path column."""
    if isinstance(data, np.ndarray) or (isinstance(data, list | tuple) and data and isinstance(data[0], str | Path)):
        return True
    if isinstance(data, pd.DataFrame):
        if path_column_name is not None:
            return path_column_name in data.columns
        return path_column(data, None, "the DataFrame") is not None
    if not isinstance(data, str | Path) or "://" in str(data):
        return False
    path = Path(data)
    if path.is_dir():
        return next((True for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), False)
    if path.suffix.lower() == ".npz" or is_idx(path):
        return True
    if path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES):
        try:
            head = _read_head(path)
        except Exception:  # not a table we can peek at: let the table reader report it
            return False
        name = path_column_name if path_column_name in head.columns else None
        return path_column(head, name, str(path)) is not None
    return False


def _read_head(path: Path, rows: int = 50) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return next(pq.ParquetFile(path).iter_batches(batch_size=rows)).to_pandas()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return pd.read_json(path, lines=True, nrows=rows)
    return pd.read_csv(path, sep=None, engine="python", nrows=rows)


# ---- loading ----------------------------------------------------------------------------------------
def load_images(
    data: Any,
    config: Any = None,
    *,
    labels: Any = None,
    target: str | None = None,
    read: Any = None,
    trained_column: str | None = None,
    verbatim: str | None = None,
) -> ImageData:
    """Read ``data`` (folder, table path or DataFrame, IDX or NPZ file, array, list of paths, one image file) into
    ImageData.

    ``config`` is the run's ``images`` section (path column, strict); ``labels`` labels an array or path list;
    ``target`` names the label column of a table; ``read`` is the DataConfig for table files;
    ``trained_column`` is the path column a model was trained on, used when a table has it; ``verbatim`` names a
    table file's column (an id) read exactly as written."""
    strict = bool(getattr(config, "strict", False))
    configured = getattr(config, "path_column", None)
    if isinstance(data, np.ndarray):
        return _from_array(data, "the array", labels)
    if isinstance(data, list | tuple):
        paths = [Path(p) for p in data]
        out = ImageData("the list of paths", [str(p) for p in data], _labels(labels, len(paths)), paths=paths)
        return scan_files(out, strict)
    if isinstance(data, pd.DataFrame):
        if configured is None and trained_column in data.columns:
            configured = trained_column
        return _from_table(data, "the DataFrame", Path.cwd(), configured, target, strict)
    path = Path(data)
    if not path.exists():
        raise SourceNotFoundError(
            f"'{path}' does not exist; pass an image folder, a table of image paths, an IDX file or an NPZ file"
        )
    if path.is_dir():
        return _from_folder(path, strict)
    if path.suffix.lower() in IMAGE_SUFFIXES:  # one image file
        return scan_files(ImageData(str(path), [str(path)], _labels(labels, 1), paths=[path]), strict)
    if is_idx(path):
        return _from_idx(path)
    if path.suffix.lower() == ".npz":
        return _from_npz(path)
    from deepmine.data.sources import load_table

    frame = load_table(str(path), read, verbatim=verbatim)
    if configured is None and trained_column in frame.columns:
        configured = trained_column
    return _from_table(frame, str(path), path.parent, configured, target, strict)


def _labels(labels: Any, n: int, where: str = "the images") -> np.ndarray | None:
    if labels is None:
        return None
    values = np.asarray(labels)
    if values.ndim != 1 or len(values) != n:
        raise DataError(f"{where}: labels must be 1-D with one value per image ({n}), got shape {values.shape}")
    return values


def _from_array(array: np.ndarray, where: str, labels: Any) -> ImageData:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{where}: images must be shaped (n, height, width) or (n, height, width, channels) with 1, 3 or 4 "
            f"channels, got {array.shape}"
        )
    if array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype != np.uint8:
        values = np.asarray(array, dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"{where}: images hold NaN or infinite values; clean them first")
        scale = 255.0 if values.max() <= 1.0 else 1.0
        array = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    n = len(array)
    out = ImageData(where, [str(i) for i in range(n)], _labels(labels, n, where), array=np.ascontiguousarray(array))
    out.sizes[tuple(array.shape[1:3])] = n
    out.modes["L" if array.shape[-1] == 1 else "RGB"] = n
    return out


def _from_folder(folder: Path, strict: bool) -> ImageData:
    files = _images_in(folder)
    if not files:
        raise DataError(
            f"folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES[:4])} ...); put images in one "
            "sub-folder per class (photos/cat/1.jpg, photos/dog/2.jpg) or point at the right folder"
        )
    relative = [p.relative_to(folder) for p in files]
    nested = [len(r.parts) > 1 for r in relative]
    if all(nested):
        labels = np.asarray([r.parts[0] for r in relative], dtype=object)
        empty = [d.name for d in sorted(folder.iterdir()) if d.is_dir() and not _images_in(d)]
        if empty:
            warnings.warn(
                f"{folder}: class folder(s) {empty[:SHOWN_SKIPPED]} hold no images and are ignored",
                DeepmineWarning,
                stacklevel=3,
            )
    elif not any(nested):
        labels = None
    else:
        top = [str(r) for r, n in zip(relative, nested, strict=True) if not n][:3]
        raise DataError(
            f"folder '{folder}' mixes images at its top level ({', '.join(top)}) with class sub-folders; "
            "move every image into a class folder (or predict on a folder without sub-folders)"
        )
    data = ImageData(str(folder), [r.as_posix() for r in relative], labels, paths=files)
    return scan_files(data, strict)


def _from_table(
    frame: pd.DataFrame, where: str, base: Path, configured: str | None, target: str | None, strict: bool
) -> ImageData:
    column = path_column(frame, configured, where)
    if column is None:
        raise ColumnError(
            f"{where} has no column of image paths (values ending in .png, .jpg ...); name it with "
            "images.path_column (fit: --set images.path_column=NAME; a trained model uses the column it was trained on)"
        )
    names = ["" if pd.isna(v) else str(v).strip() for v in frame[column].tolist()]  # a blank cell: no path
    paths = [Path(n) if Path(n).is_absolute() else base / n for n in names]
    labels = None
    rest = frame.drop(columns=[column])
    if target is not None and target in frame.columns:
        keep = frame[target].notna().to_numpy()
        if not keep.all():
            warnings.warn(
                f"{where}: dropping {int((~keep).sum())} row(s) with no value in target '{target}'",
                DeepmineWarning,
                stacklevel=3,
            )
            index = np.flatnonzero(keep)
            names, paths, rest = [names[i] for i in index], [paths[i] for i in index], rest.iloc[index]
        labels = rest[target].to_numpy()
        rest = rest.drop(columns=[target])
    data = ImageData(where, names, labels, paths=paths, table=rest.reset_index(drop=True))
    data.path_column = column
    return scan_files(data, strict, what=f"rows of {where} (column '{column}')")


def _idx_labels(path: Path) -> Path | None:
    name = path.name.replace("images-idx3", "labels-idx1").replace("idx3", "idx1")
    candidate = path.with_name(name)
    return candidate if candidate.exists() else None


def _from_idx(path: Path) -> ImageData:
    from deepmine.data.idx import read_idx

    images = read_idx(path)
    label_path = _idx_labels(path)
    labels = read_idx(label_path) if label_path is not None else None
    if labels is not None and len(labels) != len(images):
        raise DataError(f"'{label_path}' holds {len(labels)} labels but '{path}' holds {len(images)} images")
    return _from_array(images, str(path), labels)


NPZ_IMAGES = ("x", "images", "X", "x_train", "data")
NPZ_LABELS = ("y", "labels", "Y", "y_train", "target")


def _from_npz(path: Path) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            image_key = next((k for k in NPZ_IMAGES if k in keys), None)
            if image_key is None:
                raise DataError(
                    f"NPZ file '{path}' has no image array named one of {list(NPZ_IMAGES)}; it holds {keys}"
                )
            label_key = next((k for k in NPZ_LABELS if k in keys), None)
            images = npz[image_key]
            labels = npz[label_key] if label_key is not None else None
    except (OSError, ValueError) as err:
        raise DataError(f"'{path}' could not be read as an NPZ file ({err})") from err
    return _from_array(images, str(path), labels)


# ---- checking files -----------------------------------------------------------------------------------
def _check_one(path: Path) -> tuple[str | None, tuple[int, int], str]:
    """(problem or None, (height, width), mode) after a full decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing", (0, 0), ""
    except OSError as err:
        return f"unreadable ({err.strerror})", (0, 0), ""
    if size == 0:
        return "zero bytes", (0, 0), ""
    try:
        with Image.open(path) as image:
            image.load()
            return None, (image.height, image.width), image.mode
    except UnidentifiedImageError:
        return "not an image", (0, 0), ""
    except (OSError, SyntaxError, ValueError) as err:
        return f"damaged ({str(err).splitlines()[0][:80]})", (0, 0), ""


def _progress(items: list[Path], what: str):
    """A transient progress bar on a terminal for long scans; the plain list otherwise."""
    import sys

    if len(items) < 2000 or not sys.stderr.isatty():
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, description=what, console=Console(stderr=True), transient=True)


def scan_files(data: ImageData, strict: bool, what: str | None = None) -> ImageData:
    """Decode every file once; drop the unreadable ones with one warning (``strict``: stop at the first)."""
    if data.paths is None:
        raise TypeError("scan_files needs image data read from files (paths), not arrays")
    keep: list[int] = []
    skipped: list[str] = []
    modes: Counter = Counter()
    sizes: Counter = Counter()
    for i, path in enumerate(_progress(data.paths, f"reading {data.where}")):
        problem, size, mode = _check_one(path) if data.names[i] else ("a blank path", (0, 0), "")
        if problem is None:
            keep.append(i)
            modes[mode] += 1
            sizes[size] += 1
            continue
        if strict:
            raise DataError(f"image '{path}' is {problem}; remove or replace it (or drop --strict to skip it)")
        skipped.append(f"{data.names[i] or f'row {i + 1}'} ({problem})")
    if not keep:
        raise DataError(
            f"none of the {len(data.paths)} images in {data.where} could be read "
            f"(first: {', '.join(skipped[:SHOWN_SKIPPED])}); check the paths and files"
        )
    if skipped:
        warnings.warn(
            f"{data.where}: skipped {len(skipped)} of {len(data.paths)} {what or 'images'} that could not be read: "
            f"{', '.join(skipped[:SHOWN_SKIPPED])}{' ...' if len(skipped) > SHOWN_SKIPPED else ''} "
            "(fit and predict take --strict, and images.strict=True in Python, to stop instead)",
            DeepmineWarning,
            stacklevel=3,
        )
        unread_at = np.setdiff1d(np.arange(len(data.paths)), keep)
        unread = data.subset(unread_at)
        data = data.subset(np.asarray(keep))
        data.kept_at, data.unread, data.unread_at = np.asarray(keep), unread, unread_at
    data.modes, data.sizes, data.skipped = modes, sizes, skipped
    return data
