"""Every error leaves the API as {"detail": ...}."""

from __future__ import annotations

import logging
import re
from functools import cache

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.routing import compile_path

from infra.storage import StorageKeyError

log = logging.getLogger(__name__)


def _methods_by_path(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    routes = []
    for context in iter_route_contexts(app.routes):
        methods = getattr(context, "methods", None)
        if context.path and methods:
            routes.append((compile_path(context.path)[0], frozenset(methods)))
    return routes


def install_error_handlers(app: FastAPI) -> None:
    routes = cache(lambda: _methods_by_path(app))

    # Starlette's 405 names only the methods of the first route matching the path; a path served by
    # several routes (GET and DELETE /api/jobs/{id}) must list all of them in Allow (RFC 9110).
    @app.exception_handler(405)
    async def _method_not_allowed(request: Request, _error: Exception) -> JSONResponse:
        path = request.url.path
        allowed = set().union(*(methods for pattern, methods in routes() if pattern.match(path)))
        return JSONResponse(status_code=405, content={"detail": "Method Not Allowed"},
                            headers={"Allow": ", ".join(sorted(allowed))})

    @app.exception_handler(StorageKeyError)
    async def _bad_key(_request: Request, error: StorageKeyError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    # Raised by a commit that fails (the session commits before the response is sent): the client
    # hears the failure, never a 2xx for data that was not stored.
    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, error: IntegrityError) -> JSONResponse:
        log.warning("integrity error on %s %s: %s", request.method, request.url.path, error.orig)
        detail = "the change conflicts with stored data and was not saved"
        return JSONResponse(status_code=409, content={"detail": detail})

    @app.exception_handler(OperationalError)
    async def _unavailable(request: Request, error: OperationalError) -> JSONResponse:
        log.warning("database error on %s %s: %s", request.method, request.url.path, error.orig)
        return JSONResponse(status_code=503, content={"detail": "the database is unavailable; nothing was saved"},
                            headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "Internal server error"})
