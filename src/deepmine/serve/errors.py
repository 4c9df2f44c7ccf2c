"""Every error the service returns is JSON: ``{"detail": [{"loc", "field", "msg", "type"}, ...]}``.

User mistakes are 4xx naming the field and the problem; a 5xx only ever means a bug in deepmine.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from deepmine.exceptions import ColumnError, DataError, DeepmineError

_COLUMN = re.compile(r"column(?:\(s\))? \[?'([^']+)'")


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(..., description="Where the problem is: body, records, row index, field name.")
    field: str | None = Field(None, description="The offending field or column, when there is one.")
    msg: str = Field(..., description="What is wrong and how to fix it.")
    type: str = Field(..., description="A short machine-readable error type.")


class ErrorResponse(BaseModel):
    detail: list[ErrorDetail]


class ApiError(Exception):
    """An error answer: an HTTP status and one or more details."""

    def __init__(
        self, status: int, msg: str, type_: str, *, field: str | None = None, loc: list[str | int] | None = None
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.details = [detail(msg, type_, field=field, loc=loc)]

    @classmethod
    def many(cls, status: int, details: list[dict[str, Any]]) -> ApiError:
        error = cls(status, details[0]["msg"], details[0]["type"])
        error.details = details
        return error


def detail(msg: str, type_: str, *, field: str | None = None, loc: list[str | int] | None = None) -> dict[str, Any]:
    if loc is None:
        loc = ["body", field] if field else ["body"]
    return {"loc": loc, "field": field, "msg": msg, "type": type_}


def error_response(status: int, details: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"detail": details}, default=str).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def from_validation(err: ValidationError | RequestValidationError, prefix: tuple[str, ...] = ("body",)) -> ApiError:
    """pydantic's errors, each naming its field (the last string in its location)."""
    details = []
    for item in err.errors():
        loc = [*prefix, *item.get("loc", ())]
        field = next((p for p in reversed(loc) if isinstance(p, str) and p not in ("body", "records")), None)
        msg = item.get("msg", "invalid value")
        if item.get("type") == "extra_forbidden" and field is not None:
            msg = f"unknown field '{field}': the model was not trained on such a column"
        elif item.get("type") == "missing" and field is not None:
            msg = f"field '{field}' is required (send null when the value is missing)"
        details.append(detail(msg, str(item.get("type", "value_error")), field=field, loc=loc))
    return ApiError.many(422, details or [detail("invalid request", "value_error")])


def from_data_error(err: DataError) -> ApiError:
    """A pipeline error (bad value, missing column) as a 422 naming the column."""
    message = str(err)
    match = _COLUMN.search(message)
    field = match.group(1) if match else None
    type_ = "column_error" if isinstance(err, ColumnError) else "data_error"
    return ApiError(422, message, type_, field=field)


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    async def api_error(request: Request, exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "ApiKey"} if exc.status == 401 else None
        return error_response(exc.status, exc.details, headers)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        error = from_validation(exc, prefix=())
        return error_response(error.status, error.details)

    async def deepmine_error(request: Request, exc: DeepmineError) -> Response:
        error = from_data_error(exc) if isinstance(exc, DataError) else ApiError(422, str(exc), "deepmine_error")
        return error_response(error.status, error.details)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(
            exc.status_code, [detail(str(exc.detail), f"http_{exc.status_code}", loc=[])], getattr(exc, "headers", None)
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette re-raises the exception after this answer, so the server logs its traceback
        msg = "internal server error (a bug in deepmine; the server log has the traceback)"
        return error_response(500, [detail(msg, "internal_error", loc=[])])

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DeepmineError, deepmine_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
