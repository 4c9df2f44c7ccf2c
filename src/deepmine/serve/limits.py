"""Request body limit: bodies over ``max_bytes`` get a 413 with a JSON body, and are never held in memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepmine.serve.errors import ApiError, detail, error_response

# An over-limit body is read and thrown away (up to this much) before the connection is closed, so the
# client, still sending, gets to read the 413 instead of a connection reset.
DRAIN_BYTES = 64 * 2**20


def too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        f"request body is larger than the limit of {max_bytes} bytes; send fewer rows per request "
        "(or start the server with a larger --max-body-mb)",
        "body_too_large",
        loc=["body"],
    )


async def _drain(receive: Receive, already: int) -> None:
    """Read and discard the rest of a request body (up to ``DRAIN_BYTES`` in all)."""
    read = already
    while read <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodyLimit:
    """Pure ASGI middleware: checks Content-Length up front and counts streamed (chunked) bodies."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    response = error_response(400, [detail("invalid Content-Length header", "bad_header")])
                    await response(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    await _drain(receive, 0)
                    response = error_response(413, too_large(self.max_bytes).details, {"Connection": "close"})
                    await response(scope, receive, send)
                    return
        seen = 0
        done = False

        async def counted() -> Message:
            nonlocal seen, done
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise too_large(self.max_bytes)  # answered as a 413 by the ApiError handler
            return message

        await self.app(scope, counted, send)
        if seen > self.max_bytes and not done:
            await _drain(receive, seen)
