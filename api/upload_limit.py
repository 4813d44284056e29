"""A route class that refuses request bodies over `settings.max_upload_bytes` with 413.

FastAPI parses (and spools) a multipart body before any dependency runs, so the limit has to sit
in front of the route handler: the declared Content-Length is checked before a byte is read, and
the bytes actually received are counted too (chunked requests declare no length).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message, Receive


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status_code=413, detail=f"request body exceeds the upload limit of {limit} bytes")


def _counting_receive(receive: Receive, limit: int) -> Receive:
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # FastAPI re-raises HTTPException from body parsing, so this becomes a plain 413.
                raise _too_large(limit)
        return message

    return wrapped


class UploadLimitRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited_handler(request: Request) -> Response:
            limit: int = request.app.state.settings.max_upload_bytes
            declared = request.headers.get("content-length")
            if declared is not None:
                if not declared.isdigit():
                    raise HTTPException(status_code=400, detail="invalid Content-Length header")
                if int(declared) > limit:
                    raise _too_large(limit)
            return await handler(Request(request.scope, _counting_receive(request.receive, limit)))

        return limited_handler
