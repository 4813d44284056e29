"""Every error leaves the API as {"detail": ...}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError

from infra.storage import StorageKeyError

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
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
