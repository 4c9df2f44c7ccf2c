"""Optional API key: the ``X-API-Key`` header, compared in constant time (hmac.compare_digest)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from fastapi import Security
from fastapi.security import APIKeyHeader

from deepmine.serve.errors import ApiError

HEADER = "X-API-Key"
ENV_VAR = "DEEPMINE_API_KEY"

_scheme = APIKeyHeader(name=HEADER, auto_error=False, description="Required when the server has an API key.")


def resolve_key(api_key: str | None) -> str | None:
    """The key given, else ``$DEEPMINE_API_KEY``; an empty key means none."""
    key = api_key if api_key is not None else os.environ.get(ENV_VAR)
    return key or None


def key_checker(api_key: str | None) -> Callable[..., None]:
    """A FastAPI dependency that lets a request through only with the right key (when there is one)."""
    expected = api_key.encode() if api_key else None

    async def check(given: str | None = Security(_scheme)) -> None:  # async: no thread hop
        if expected is None:
            return
        if not given:
            raise ApiError(
                401,
                f"missing {HEADER} header; this server needs an API key",
                "missing_api_key",
                field=HEADER,
                loc=["header", HEADER],
            )
        if not hmac.compare_digest(given.encode("latin-1", "replace"), expected):
            raise ApiError(
                401, f"wrong API key in the {HEADER} header", "invalid_api_key", field=HEADER, loc=["header", HEADER]
            )

    return check
