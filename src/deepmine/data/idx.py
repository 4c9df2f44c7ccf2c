"""IDX files (the MNIST format): ``*-idx3-ubyte`` images and ``*-idx1-ubyte`` labels, optionally gzipped."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from deepmine.exceptions import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file into an array shaped as its header says (e.g. (60000, 28, 28) uint8)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError as err:
        raise DataError(f"IDX file '{path}' does not exist; check the path") from err
    except (OSError, EOFError) as err:
        raise DataError(f"IDX file '{path}' could not be read ({err}); is it a complete (gzipped) IDX file?") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"'{path}' is not an IDX file (bad magic number); expected e.g. train-images-idx3-ubyte[.gz]")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file '{path}' is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"IDX file '{path}' holds {len(raw) - header} data bytes but its header {shape} needs {expected}; "
            "the file is truncated or damaged"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
