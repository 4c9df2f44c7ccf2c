"""``create_image_app(predictor)``: the FastAPI app serving an image classifier artifact (``"kind": "image"``).

``POST /predict`` takes image files in a ``multipart/form-data`` body (every file part is one image, whatever
the field is called) or JSON ``{"images": [{"name": ..., "data": "<base64>"}, ...]}``, and answers one
prediction per image with its class probabilities. A model that also reads table columns takes each image's
other columns too: ``"record": {column: value}`` beside ``"data"`` in JSON, or a form field ``records``
holding a JSON list of such objects, one per file part in order. Each image is decoded exactly as ``deepmine predict``
decodes a file (same gray/RGB conversion, resize and pad/crop), so both give the same answer. ``GET /health``
and ``GET /metadata`` (classes, image size, metrics, versions) as for tables; docs at ``/docs``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response

from deepmine.exceptions import ArtifactError
from deepmine.images.predictor import ImagePredictor
from deepmine.images.transforms import decode
from deepmine.serve.app import DEFAULT_MAX_BODY_BYTES, add_middleware, content_type, error_responses, service_app
from deepmine.serve.errors import ApiError, from_validation
from deepmine.serve.inference import match_torch_threads
from deepmine.serve.metadata import _json_safe
from deepmine.versions import package_versions

MAX_IMAGES = 1024


class EncodedImage(BaseModel):
    name: str | None = Field(None, description="A name echoed back in the answer (default: the image's index).")
    data: str = Field(..., description="The image file's bytes (PNG, JPEG, ...) in base64.")
    record: dict[str, Any] | None = Field(
        None, description="Image + table models only: this image's other columns, {column: value}."
    )


class ImageRequest(BaseModel):
    images: list[EncodedImage] = Field(..., min_length=1, description="One entry per image.")


class ImagePrediction(BaseModel):
    name: str
    prediction: Any
    probabilities: dict[str, float]


class ImagePredictions(BaseModel):
    predictions: list[ImagePrediction]


class ImageMetadata(BaseModel):
    format_version: int | None
    kind: str
    task: str
    classes: list[Any]
    image: dict[str, Any] = Field(..., description="Size, channels and resize mode every image is brought to")
    columns: list[dict[str, Any]] = Field(
        default_factory=list, description="Image + table models: the table columns each image needs (name, role)"
    )
    metrics: dict[str, Any]
    model: dict[str, Any]
    created: str | None
    versions: dict[str, str]
    runtime_versions: dict[str, str]


def create_image_app(
    predictor: ImagePredictor,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    artifact_info: dict[str, Any] | None = None,
    access_log: bool = True,
) -> FastAPI:
    """A FastAPI app for an image ``predictor`` (warmed up here, before any request)."""
    spec = predictor.spec
    blank = np.zeros((1, spec.height, spec.width, spec.channels), dtype=np.uint8)
    empty = [dict.fromkeys(table_columns(predictor))] if predictor.tabular is not None else [None]
    try:
        classify(predictor, blank, empty)
    except Exception as err:
        raise ArtifactError(f"the model fails on a blank image ({type(err).__name__}: {err}); fit it again") from err
    app, guard = service_app(
        f"deepmine: image classifier ({len(predictor.classes)} classes)",
        "Predictions from a deepmine image artifact. `POST /predict` takes image files in a "
        '`multipart/form-data` body (one file part per image) or JSON `{"images": [{"name": ..., '
        '"data": "<base64>"}]}`.',
        task=predictor.task,
        meta=_metadata(predictor, artifact_info),
        meta_model=ImageMetadata,
        meta_summary="The artifact: classes, image size, metrics, versions",
        api_key=api_key,
        artifact_info=artifact_info,
    )

    @app.post(
        "/predict",
        dependencies=guard,
        responses={200: {"model": ImagePredictions, "description": "One prediction per image"}}
        | error_responses(400, *([401] if guard else []), 413, 415, 422),
        summary="Classify image files (multipart) or base64 images (JSON)",
        openapi_extra={"requestBody": _request_body()},
    )
    async def predict(request: Request) -> Response:
        kind, _ = content_type(request.headers.get("content-type"))
        if kind == "multipart/form-data":
            named, records = await _uploaded_images(request)
        elif kind == "application/json" or kind.endswith("+json"):
            named, records = _json_images(await request.body())
        else:
            raise ApiError(
                415,
                f"unsupported Content-Type '{kind}'; send image files as multipart/form-data or base64 in JSON",
                "unsupported_media_type",
                field="Content-Type",
                loc=["header", "Content-Type"],
            )
        answer = await run_in_threadpool(_predict, predictor, named, records)
        return Response(answer, media_type="application/json")

    add_middleware(app, max_body_bytes, access_log)
    app.state.predictor = predictor
    return app


def table_columns(predictor: ImagePredictor) -> list[str]:
    """The table columns an image + table model reads besides each image (none for an image-only model)."""
    return [] if predictor.tabular is None else [c.name for c in predictor.tabular.schema.features]


def classify(predictor: ImagePredictor, pixels: np.ndarray, records: list[dict[str, Any] | None]) -> np.ndarray:
    """Class probabilities of decoded ``pixels`` and, for an image + table model, each image's ``records``
    (checked like a table's rows: a missing column is a DataError naming it)."""
    if predictor.tabular is None:
        return predictor.predict_proba(pixels)
    import pandas as pd
    import torch

    from deepmine.images.sources import ImageData

    table = pd.DataFrame.from_records(records)
    images = ImageData("the request's records", [str(i) for i in range(len(pixels))], array=pixels, table=table)
    return torch.softmax(predictor.outputs(images), dim=1).numpy()


def _check_records(predictor: ImagePredictor, named: list[tuple[str, bytes]], records: list[Any]) -> None:
    """Image + table models need one record per image; image-only models take none (422 otherwise)."""
    given = [r for r in records if r is not None]
    needed = table_columns(predictor)
    if not needed and given:
        msg = "this model reads images only; send no 'record'/'records'"
        raise ApiError(422, msg, "extra_forbidden", field="record")
    if needed and len(given) != len(named):
        raise ApiError(
            422,
            f"this model also reads the table column(s) {needed}: send one record per image "
            f"({len(named)} image(s), {len(given)} record(s)) — 'record' beside 'data' in JSON, or a form field "
            "'records' with a JSON list",
            "missing",
            field="record",
        )


def _predict(predictor: ImagePredictor, named: list[tuple[str, bytes]], records: list[Any]) -> bytes:
    """Decode every image like a file on disk, classify them in one batch, answer JSON."""
    match_torch_threads()
    _check_records(predictor, named, records)
    pixels = np.stack([_decode(name, data, predictor) for name, data in named])
    proba = classify(predictor, pixels, records)
    keys = [str(c) for c in predictor.classes]
    predictions = [
        {
            "name": name,
            "prediction": predictor.classes[int(row.argmax())],
            "probabilities": dict(zip(keys, map(float, row), strict=True)),
        }
        for (name, _), row in zip(named, proba, strict=True)
    ]
    return json.dumps({"predictions": predictions}, default=str).encode()


def _decode(name: str, data: bytes, predictor: ImagePredictor) -> np.ndarray:
    from PIL import UnidentifiedImageError

    spec = predictor.spec
    if not data:
        raise ApiError(422, f"image '{name}' is empty (zero bytes)", "empty_image", field=name)
    try:
        return decode(io.BytesIO(data), spec.channels, spec.height, spec.width, spec.resize)  # type: ignore[arg-type]
    except UnidentifiedImageError:
        raise ApiError(
            422,
            f"'{name}' is not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP ...)",
            "not_an_image",
            field=name,
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ApiError(
            422, f"image '{name}' is damaged ({str(err).splitlines()[0][:80]})", "damaged_image", field=name
        ) from None


async def _uploaded_images(request: Request) -> tuple[list[tuple[str, bytes]], list[Any]]:
    """(file name, bytes) of every file part of a multipart form, in order, and the ``records`` field's list."""
    form = await request.form(max_files=MAX_IMAGES)
    try:
        uploads = [(field, v) for field, v in form.multi_items() if isinstance(v, UploadFile)]
        if not uploads:
            raise ApiError(422, "the multipart form has no file; attach each image as a file part", "missing")
        named = [(upload.filename or f"{field}[{i}]", await upload.read()) for i, (field, upload) in enumerate(uploads)]
        text = form.get("records")
        return named, [] if text is None or isinstance(text, UploadFile) else _records_field(text)
    finally:
        await form.close()


def _records_field(text: str) -> list[Any]:
    """The ``records`` form field: a JSON list of objects (422 naming the field otherwise)."""
    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        msg = f"form field 'records' is not valid JSON ({err.msg})"
        raise ApiError(422, msg, "json_invalid", field="records") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ApiError(
            422, "form field 'records' must be a JSON list of objects, one per image", "list_type", "records"
        )
    return records


def _json_images(body: bytes) -> tuple[list[tuple[str, bytes]], list[Any]]:
    """(name, bytes) of every base64 image of ``{"images": [...]}``: 400 for malformed JSON, 422 for bad fields."""
    if not body:
        raise ApiError(400, 'the request body is empty; send {"images": [{"data": "<base64>"}]}', "empty_body")
    try:
        request = ImageRequest.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0] if err.errors() else {}
        if first.get("type") == "json_invalid":
            raise ApiError(400, f"the body is not valid JSON ({first.get('msg', '')})", "json_invalid") from None
        raise from_validation(err) from None
    if len(request.images) > MAX_IMAGES:
        raise ApiError(422, f"{len(request.images)} images in one request; send at most {MAX_IMAGES}", "too_many")
    named = []
    for i, image in enumerate(request.images):
        name = image.name or str(i)
        try:
            named.append((name, base64.b64decode(image.data, validate=True)))
        except (binascii.Error, ValueError):
            raise ApiError(
                422,
                f"image '{name}': 'data' is not valid base64",
                "base64_invalid",
                field="data",
                loc=["body", "images", i, "data"],
            ) from None
    return named, [image.record for image in request.images]


def _metadata(predictor: ImagePredictor, info: dict[str, Any] | None) -> dict[str, Any]:
    if info is None:
        from deepmine.images.predictor import FORMAT_VERSION

        info = {"format_version": FORMAT_VERSION, "versions": package_versions(), "created": None}
    spec = predictor.spec
    return _json_safe(
        {
            "format_version": info.get("format_version"),
            "kind": "image",
            "task": predictor.task,
            "classes": predictor.classes,
            "image": {"height": spec.height, "width": spec.width, "channels": spec.channels, "resize": spec.resize},
            "columns": []
            if predictor.tabular is None
            else [{"name": c.name, "role": c.role} for c in predictor.tabular.schema.features],
            "metrics": {k: v for k, v in predictor.metrics.items() if k != "confusion_matrix"},
            "model": {k: v for k, v in predictor.model_spec.items() if isinstance(v, str | int | float | bool)},
            "created": info.get("created"),
            "versions": {str(k): str(v) for k, v in (info.get("versions") or {}).items()},
            "runtime_versions": package_versions(),
        }
    )


def _request_body() -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Image files (any field name; every file part is one image).",
                        }
                    },
                }
            },
            "application/json": {"schema": ImageRequest.model_json_schema()},
        },
    }
