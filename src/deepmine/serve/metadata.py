"""``GET /metadata`` and ``GET /health``: what the artifact is and what it expects."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from deepmine.predictor import Predictor
from deepmine.serve.request_model import Models
from deepmine.versions import package_versions


class HealthResponse(BaseModel):
    status: str = Field(..., description="'ok' once the model is loaded")
    task: str


class InputInfo(BaseModel):
    name: str
    role: str = Field(..., description="numeric, categorical, binary, text, datetime; id/constant/target: ignored")
    type: str = Field(..., description="JSON type of the value: number or string")
    required: bool = Field(..., description="Feature columns are required (null when missing)")
    reason: str = Field("", description="Why the column got its role")


class MetadataResponse(BaseModel):
    format_version: int | None
    task: str
    target: str | None
    classes: list[Any]
    id_column: str | None
    inputs: list[InputInfo]
    table_schema: dict[str, Any] = Field(..., alias="schema", description="The artifact's schema (roles and reasons)")
    metrics: dict[str, Any]
    model: dict[str, Any]
    created: str | None
    versions: dict[str, str] = Field(..., description="Package versions the artifact was written with")
    runtime_versions: dict[str, str] = Field(..., description="Package versions serving it")


def artifact_info(path: str | Path) -> dict[str, Any]:
    """The manifest fields the predictor object does not keep (format version, versions, creation time)."""
    manifest = json.loads((Path(path) / "deepmine.json").read_text(encoding="utf-8"))
    return {k: manifest.get(k) for k in ("format_version", "versions", "created")}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def metadata(predictor: Predictor, models: Models, info: dict[str, Any] | None) -> dict[str, Any]:
    if info is None:
        from deepmine.artifact import table_format

        info = {"format_version": table_format(predictor.model_spec), "versions": package_versions(), "created": None}
    reasons = {c.name: c.reason for c in predictor.schema.columns}
    inputs = [
        {
            "name": f.name,
            "role": f.role,
            "type": "number" if f.role == "numeric" else "string",
            "required": f.feature,
            "reason": reasons.get(f.name, ""),
        }
        for f in models.fields
    ]
    model = {"name": predictor.config.model.name, **{k: v for k, v in predictor.model_spec.items() if _small(v)}}
    return _json_safe(
        {
            "format_version": info.get("format_version"),
            "task": predictor.task,
            "target": predictor.schema.target,
            "classes": predictor.schema.classes,
            "id_column": predictor.config.columns.id,
            "inputs": inputs,
            "schema": predictor.schema.to_dict(),
            "metrics": predictor.metrics,
            "model": model,
            "created": info.get("created"),
            "versions": {str(k): str(v) for k, v in (info.get("versions") or {}).items()},
            "runtime_versions": package_versions(),
        }
    )


def _small(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or (isinstance(value, list) and len(value) <= 64)
