"""Request body limits, enforced before a byte is parsed: 413 for bodies over the limit.

FastAPI parses (and spools) a body before any dependency runs, so the limit sits in front of
routing, as a middleware that covers every route (routes added later too): the declared
Content-Length is checked before a byte is read, and the bytes actually received are counted
too (chunked requests declare no length). Multipart uploads get ``settings.max_upload_bytes``,
every other body (JSON) ``settings.max_json_bytes`` (``INSPECT_MAX_JSON_BYTES``).
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_LIMIT = "the upload limit"
JSON_LIMIT = "the JSON body limit (INSPECT_MAX_JSON_BYTES)"


def _too_large(limit: int, what: str) -> HTTPException:
    return HTTPException(status_code=413, detail=f"request body exceeds {what} of {limit} bytes")


def declared_length_error(headers: Headers, limit: int, what: str) -> HTTPException | None:
    """The error for a declared Content-Length that is malformed (400) or over ``limit`` (413), else None."""
    declared = headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        return HTTPException(status_code=400, detail="invalid Content-Length header")
    return _too_large(limit, what) if int(declared) > limit else None


def _counting_receive(receive: Receive, limit: int, what: str) -> Receive:
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # FastAPI re-raises HTTPException from body parsing, so this becomes a plain 413.
                raise _too_large(limit, what)
        return message

    return wrapped


class BodyLimitMiddleware:
    """``upload_limit`` on multipart bodies, ``json_limit`` on every other body, for every route."""

    def __init__(self, app: ASGIApp, upload_limit: int, json_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.json_limit = json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # A multipart body sent to a JSON route is still read whole, so it gets the upload limit, no more.
        if headers.get("content-type", "").lower().startswith("multipart/"):
            limit, what = self.upload_limit, UPLOAD_LIMIT
        else:
            limit, what = self.json_limit, JSON_LIMIT
        error = declared_length_error(headers, limit, what)
        if error is not None:
            response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
            await response(scope, receive, send)
            return
        await self.app(scope, _counting_receive(receive, limit, what), send)
