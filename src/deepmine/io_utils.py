"""Atomic folder writes and JSON + safetensors storage of nested state (never pickle)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from deepmine.exceptions import ConfigError, DataError

_TENSOR = "__tensor__"


def check_output_file(path: Path) -> None:
    """A usage error when an output file path names an existing folder (it cannot be replaced by a file)."""
    if Path(path).is_dir():
        raise ConfigError(f"'{path}' is a folder; give a file path for the output, such as '{Path(path) / 'out'}'")


def check_not_input(output: Path | None, data: object, suggestion: str = "predictions") -> None:
    """A usage error when an output file is the input file ``data`` itself (it would be replaced by the output)."""
    if output is None or not isinstance(data, str | Path):
        return
    try:
        same = Path(output).exists() and Path(data).is_file() and os.path.samefile(output, data)
    except (OSError, ValueError):  # a SQL URL or an unreadable name is no file to protect
        return
    if same:
        raise ConfigError(
            f"-o '{output}' is the input file '{data}': writing there would replace your data; choose another "
            f"file, such as '{Path(output).with_stem(Path(output).stem + '-' + suggestion)}'"
        )


# a folder holding one of these was written by deepmine (an artifact, a checkpoint) and may be replaced
WRITTEN_BY_DEEPMINE = ("deepmine.json", "state.json")


def check_replaceable(target: Path) -> None:
    """Raise a one-line error unless ``target`` is absent, an empty folder, or a folder deepmine wrote: an
    output folder never replaces a file or a folder of the user's own (it would be deleted)."""
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise DataError(
            f"'{target}' is a file, not an artifact folder; choose another --out folder (it would be replaced)"
        )
    if any(target.iterdir()) and not any((target / name).is_file() for name in WRITTEN_BY_DEEPMINE):
        raise DataError(
            f"'{target}' is a folder with files that deepmine did not write (no deepmine.json); choose a new or "
            "empty --out folder (writing there would delete them)"
        )


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` in one rename.
    On failure nothing is left behind and an existing ``target`` is untouched. ``target`` must pass
    :func:`check_replaceable`."""
    target = Path(target)
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def split_tensors(tree: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """Replace every tensor in a nested dict/list with a reference; collect tensors in ``tensors``."""
    if isinstance(tree, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = tree.detach().cpu().clone().contiguous()
        return {_TENSOR: key}
    if isinstance(tree, dict):
        return {str(k): split_tensors(v, tensors, f"{prefix}.{k}") for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [split_tensors(v, tensors, f"{prefix}.{i}") for i, v in enumerate(tree)]
    return tree


def join_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_tensors`."""
    if isinstance(tree, dict):
        if set(tree) == {_TENSOR}:
            return tensors[tree[_TENSOR]]
        return {k: join_tensors(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tensors(v, tensors) for v in tree]
    return tree


def save_state(folder: Path, state: dict[str, Any]) -> None:
    """Write nested state as ``state.json`` + ``state.safetensors`` into ``folder`` atomically."""
    tensors: dict[str, torch.Tensor] = {}
    tree = split_tensors(state, tensors)
    with atomic_folder(folder) as tmp:
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(tree), encoding="utf-8")


def load_state(folder: Path) -> dict[str, Any]:
    """Read what :func:`save_state` wrote."""
    tensors = load_file(str(folder / "state.safetensors"))
    tree = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    return join_tensors(tree, tensors)


def int_keys(mapping: dict[str, Any], convert: Callable[[str], Any] = int) -> dict[Any, Any]:
    """JSON turns int dict keys into strings; turn them back."""
    return {convert(k): v for k, v in mapping.items()}
