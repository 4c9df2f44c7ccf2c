"""``create_app(predictor)``: the FastAPI app serving one loaded artifact.

Routes: ``POST /predict`` (JSON records, a text/csv body or a multipart CSV file), ``GET /health``,
``GET /metadata``; OpenAPI docs at ``/docs`` with a typed request model built from the artifact's schema.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response

from deepmine.exceptions import ArtifactError
from deepmine.predictor import Predictor
from deepmine.serve import errors
from deepmine.serve.access_log import AccessLog
from deepmine.serve.errors import ApiError, ErrorResponse
from deepmine.serve.inference import CSV_WHERE, Inference, match_torch_threads
from deepmine.serve.limits import BodyLimit
from deepmine.serve.metadata import HealthResponse, MetadataResponse, metadata
from deepmine.serve.request_model import build_models
from deepmine.serve.security import key_checker, resolve_key

DEFAULT_MAX_BODY_BYTES = 10 * 2**20
ID_QUERY = Query(
    alias="id",
    description="A field (JSON) or column (CSV) holding each row's key, echoed verbatim with its prediction; "
    "it need not be a column of the model. Default: the artifact's id column (columns.id), when sent.",
)
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv", "text/plain")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Malformed body (not JSON, not CSV, empty)",
        401: "Missing or wrong API key",
        413: "Body larger than the limit",
        415: "Unsupported Content-Type",
        422: "A field or column is missing, unknown or has a wrong value",
    }
    return {status: {"model": ErrorResponse, "description": text[status]} for status in statuses}


def create_app(
    predictor: Predictor,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    artifact_info: dict[str, Any] | None = None,
    access_log: bool = True,
) -> FastAPI:
    """A FastAPI app for ``predictor`` (loaded and warmed up here, before any request).

    ``api_key`` (else ``$DEEPMINE_API_KEY``) makes ``/predict`` and ``/metadata`` require an ``X-API-Key``
    header; ``artifact_info`` carries the manifest's format version, package versions and creation time.
    """
    models = build_models(predictor)
    inference = Inference(predictor, models)
    try:
        inference.warm_up()
    except Exception as err:
        raise ArtifactError(
            f"the model fails on a test row ({type(err).__name__}: {err}); the artifact may come from an older "
            "deepmine: fit it again"
        ) from err
    app, guard = service_app(
        f"deepmine: {predictor.task} model for '{predictor.schema.target}'",
        'Predictions from a deepmine artifact. `POST /predict` takes JSON `{"records": [...]}` (one object '
        "per row, a field per column), a `text/csv` body, or a CSV file in a `multipart/form-data` field "
        "named `file`.",
        task=predictor.task,
        meta=metadata(predictor, models, artifact_info),
        meta_model=MetadataResponse,
        meta_summary="The artifact: input schema with roles, task, classes, metrics, versions",
        api_key=api_key,
        artifact_info=artifact_info,
    )
    key = bool(guard)

    @app.post(
        "/predict",
        dependencies=guard,
        responses={200: {"model": models.response, "description": "One prediction per row"}}
        | error_responses(400, *([401] if key else []), 413, 415, 422),
        summary="Predict rows sent as JSON records or as a CSV file",
        openapi_extra={"requestBody": _request_body()},
    )
    async def predict(request: Request, id_field: Annotated[str | None, ID_QUERY] = None) -> Response:
        kind, charset = content_type(request.headers.get("content-type"))
        if kind == "multipart/form-data":
            body, charset = await _uploaded_file(request)
            kind = "text/csv"
        else:
            body = await request.body()
        if not body:
            raise ApiError(400, 'the request body is empty; send JSON {"records": [{...}]} or a CSV file', "empty_body")
        if kind in JSON_TYPES or kind.endswith("+json"):
            answer = await run_in_threadpool(_predict_json, inference, body, id_field)
            return Response(answer, media_type="application/json")
        if kind in CSV_TYPES:
            answer = await run_in_threadpool(_predict_csv, inference, body, charset, id_field)
            return Response(answer, media_type="application/json")
        raise ApiError(
            415,
            f"unsupported Content-Type '{kind or 'none'}'; send application/json, text/csv or multipart/form-data",
            "unsupported_media_type",
            field="Content-Type",
            loc=["header", "Content-Type"],
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            request_schema = models.request.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(request_schema.pop("$defs", {}))
            schemas["PredictRequest"] = request_schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    add_middleware(app, max_body_bytes, access_log)
    app.state.predictor = predictor
    app.state.inference = inference
    return app


def service_app(
    title: str,
    description: str,
    *,
    task: str,
    meta: dict[str, Any],
    meta_model: type,
    meta_summary: str,
    api_key: str | None,
    artifact_info: dict[str, Any] | None,
) -> tuple[FastAPI, list[Any]]:
    """What every artifact's app shares: JSON errors, ``GET /health`` and ``GET /metadata`` (``meta``, encoded
    once). Returns the app and the API-key guard for its ``/predict``."""
    meta_body = json.dumps(meta, default=str, allow_nan=False).encode()
    health_body = json.dumps({"status": "ok", "task": task}).encode()
    key = resolve_key(api_key)
    guard = [Depends(key_checker(key))] if key else []  # the docs show the X-API-Key lock only when it is needed
    version = str(((artifact_info or {}).get("versions") or {}).get("deepmine") or "unknown")
    app = FastAPI(title=title, description=description, version=version)
    errors.install(app)

    @app.get("/health", response_model=HealthResponse, summary="Liveness: the model is loaded")
    async def health() -> Response:
        return Response(health_body, media_type="application/json")

    @app.get(
        "/metadata",
        response_model=meta_model,
        dependencies=guard,
        responses=error_responses(*([401] if key else [])),
        summary=meta_summary,
    )
    async def get_metadata() -> Response:
        return Response(meta_body, media_type="application/json")

    return app, guard


def add_middleware(app: FastAPI, max_body_bytes: int, access_log: bool) -> None:
    """The body-size limit and (``access_log``) one JSON access-log line per request."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if access_log:
        app.add_middleware(AccessLog)


def _predict_json(inference: Inference, body: bytes, id_field: str | None) -> bytes:
    match_torch_threads()
    with inference.request_warnings.catching() as said:  # one request at a time: see request_warnings
        records = inference.parse_json(body, id_field)
        proba, values = inference.score_records(records)
    return inference.answer(proba, values, inference.records_ids(records, id_field), id_field, said)


def _predict_csv(inference: Inference, body: bytes, charset: str | None, id_field: str | None) -> bytes:
    match_torch_threads()
    with inference.request_warnings.catching() as said:
        frame, ids = inference.parse_csv(body, charset, id_field)
        proba, values = inference.score(frame, CSV_WHERE)
    return inference.answer(proba, values, ids, id_field, said)


def content_type(header: str | None) -> tuple[str, str | None]:
    """``("text/csv", "latin-1")`` from ``text/csv; charset=latin-1``; a missing type counts as JSON."""
    if not header:
        return "application/json", None
    kind, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"').strip()
    return kind.strip().lower(), charset


async def _uploaded_file(request: Request) -> tuple[bytes, str | None]:
    """The first file of a multipart form (the field is normally named ``file``)."""
    form = await request.form()
    try:
        uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not uploads:
            raise ApiError(
                422, "the multipart form has no file; send the CSV in a field named 'file'", "missing", field="file"
            )
        upload = uploads[0]
        _, charset = content_type(upload.content_type)
        return await upload.read(), charset
    finally:
        await form.close()


def _request_body() -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
            "text/csv": {"schema": {"type": "string", "description": "CSV with a header row naming the columns."}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary", "description": "A CSV file."}},
                    "required": ["file"],
                }
            },
        },
    }
