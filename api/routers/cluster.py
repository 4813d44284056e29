"""Hosts joining the platform: `geti-inspect worker --server URL --api-key K` asks here for its settings."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from api.deps import SettingsDep
from api.routing import API_PREFIX
from api.schemas.cluster import WorkerConfigOut
from api.schemas.common import ErrorResponse
from api.services.worker_config import NotJoinable, worker_config
from infra.credentials import ServiceAuth

router = APIRouter(prefix=API_PREFIX, tags=["cluster"])


@router.get("/cluster/worker-config", response_model=WorkerConfigOut, responses={
    403: {"model": ErrorResponse, "description": "The server has no INSPECT_API_KEY: it hands out no credentials"},
    409: {"model": ErrorResponse, "description": "Other hosts cannot join this platform (SQLite, local storage, "
                                                 "services on loopback); the detail says why"}})
def get_worker_config(request: Request, response: Response, settings: SettingsDep) -> WorkerConfigOut:
    """Settings and credentials for a worker on another host: Prefect, MLflow, database, object store.

    Needs the API key, and is refused on a server without one: the answer carries the platform's
    credentials, so it is never cached.
    """
    if settings.api_key is None:
        raise HTTPException(403, "joining hosts needs INSPECT_API_KEY set on the server: the worker configuration "
                                 "carries the platform's credentials")
    try:
        config = worker_config(settings, ServiceAuth.from_environ(), request.url.hostname or settings.host)
    except NotJoinable as error:
        raise HTTPException(409, str(error)) from None
    response.headers["Cache-Control"] = "no-store"
    return config
