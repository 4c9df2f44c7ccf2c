"""The artifact: one folder with ``deepmine.json``, ``weights.safetensors`` and ``checksum.sha256``.

Written atomically (temporary folder + rename). Loading verifies checksums and never unpickles.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepmine.config import RunConfig
from deepmine.data.schema import Schema
from deepmine.exceptions import ArtifactError
from deepmine.features.pipeline import FeaturePipeline
from deepmine.io_utils import atomic_folder
from deepmine.nn.ensemble import build_model
from deepmine.predictor import Predictor
from deepmine.versions import package_versions

FORMAT_VERSION = 1
MANIFEST = "deepmine.json"
WEIGHTS = "weights.safetensors"
CHECKSUM = "checksum.sha256"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def save_predictor(predictor: Predictor, path: Path) -> Path:
    """Write ``predictor`` to the folder ``path`` (replacing it atomically if it exists)."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "task": predictor.task,
        "config": predictor.config.model_dump(mode="json"),
        "schema": predictor.schema.to_dict(),
        "pipeline": predictor.pipeline.state(),
        "model": predictor.model_spec,
        "metrics": predictor.metrics,
        "history": predictor.history,
        "training": predictor.training,
    }
    with atomic_folder(path) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in predictor.model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt", "deepmine_format": str(FORMAT_VERSION)})
        (tmp / MANIFEST).write_text(json.dumps(_json_safe(manifest), indent=2, allow_nan=False), encoding="utf-8")
        lines = [f"{_sha256(tmp / name)}  {name}" for name in (MANIFEST, WEIGHTS)]
        (tmp / CHECKSUM).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def verify_checksums(path: Path) -> None:
    """Raise ArtifactError when a file is missing or differs from what was written."""
    checksum_file = path / CHECKSUM
    if not checksum_file.exists():
        raise ArtifactError(f"artifact '{path}' has no {CHECKSUM}; it is incomplete or not a deepmine artifact")
    for line in checksum_file.read_text(encoding="utf-8").splitlines():
        expected, _, name = line.partition("  ")
        file = path / name
        if not file.exists():
            raise ArtifactError(f"artifact '{path}' is missing {name}; re-create it with `deepmine fit`")
        if _sha256(file) != expected:
            raise ArtifactError(
                f"artifact '{path}': {name} does not match its checksum (it was modified or damaged after "
                "it was written); re-create it with `deepmine fit`"
            )


def load_predictor(path: str | Path) -> Predictor:
    """Load an artifact folder written by :func:`save_predictor`."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"artifact '{path}' does not exist; pass the folder that `deepmine fit --out` wrote")
    if not path.is_dir() or not (path / MANIFEST).exists():
        raise ArtifactError(f"'{path}' is not a deepmine artifact (expected a folder holding {MANIFEST})")
    verify_checksums(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ArtifactError(f"artifact '{path}': {MANIFEST} is not valid JSON ({err.msg})") from err
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArtifactError(
            f"artifact '{path}' has format version {version!r}, newer than this deepmine reads "
            f"({FORMAT_VERSION}); upgrade deepmine (pip install -U deepmine)"
        )
    config = RunConfig.model_validate(manifest["config"])
    schema = Schema.from_dict(manifest["schema"])
    pipeline = FeaturePipeline.from_state(schema, manifest["pipeline"])
    spec = manifest["model"]
    model = build_model(spec, config.model)
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except (SafetensorError, RuntimeError) as err:
        raise ArtifactError(f"artifact '{path}': weights do not fit the model ({str(err).splitlines()[0]})") from err
    model.eval()
    return Predictor(
        schema,
        pipeline,
        model,
        config,
        spec,
        manifest.get("metrics"),
        manifest.get("history"),
        manifest.get("training"),
    )
