"""Structured access logs: one JSON object per request on stderr (method, path, status, ms, client)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AccessLog:
    """Pure ASGI middleware; the time runs from the request's arrival to the end of the answer's body."""

    def __init__(self, app: ASGIApp, stream: TextIO | None = None) -> None:
        self.app = app
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            self.write(scope, status, (time.perf_counter() - started) * 1000.0)

    def write(self, scope: Scope, status: int, ms: float) -> None:
        client = scope.get("client")
        record = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "event": "request",
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "ms": round(ms, 3),
            "client": client[0] if client else None,
        }
        stream = self.stream or sys.stderr
        stream.write(json.dumps(record) + "\n")
        stream.flush()
