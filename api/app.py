"""Application factory: the whole REST API under /api."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.access import ApiKeyMiddleware
from api.console import install_console
from api.contract import install_contract
from api.docs import install_offline_docs
from api.errors import install_error_handlers
from api.heap import freeze_startup_heap, return_large_buffers
from api.routers import (
    active_pipelines,
    backbones,
    cluster,
    datasets,
    devices,
    jobs,
    media,
    models,
    pipelines,
    predictions,
    projects,
    sinks,
    snapshots,
    sources,
    trainable_models,
    training,
    training_schedule,
    webrtc,
)
from api.routing import API_PREFIX, serve_router
from api.upload_limit import BodyLimitMiddleware
from infra.credentials import ServiceAuth
from infra.database.engine import session_factory
from infra.database.leadership import Leadership
from infra.database.migrate import upgrade
from infra.images import ImageDecoder
from infra.orchestration import Orchestrator, prefect_api_url
from infra.orchestration.job_poller import JobIndexPoller
from infra.orchestration.run_events import RunEventsThread
from infra.settings import Settings, get_settings
from infra.storage import build_store

log = logging.getLogger(__name__)

# A health check answers (ok, detail); `serve` adds one per supervised component.
HealthCheck = Callable[[], tuple[bool, str]]


def create_app(settings: Settings | None = None, health_checks: dict[str, HealthCheck] | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        if not settings.allowed_paths:
            # The default home of video files, image folders and sink outputs (INSPECT_ALLOWED_PATHS).
            settings.resolved_allowed_paths[0].mkdir(parents=True, exist_ok=True)
        upgrade(settings.resolved_database_url)
        app.state.settings = settings
        app.state.sessionmaker = session_factory(settings.resolved_database_url)
        app.state.store = build_store(settings)
        app.state.image_decoder = ImageDecoder(settings.max_image_pixels, settings.max_concurrent_decodes,
                                               settings.thumbnail_size)
        poller = None
        if settings.job_index_poll_s > 0:  # here, not in `serve`: any process serving the app keeps the index
            # Of several processes on one PostgreSQL, the lead's holder polls (docs/architecture.md, "Jobs index").
            def events(on_event: Callable[[object], None]) -> RunEventsThread:
                return RunEventsThread(on_event, api_url=prefect_api_url(settings), name="job-index-events",
                                       auth_string=ServiceAuth.from_environ().prefect_auth_string)

            poller = JobIndexPoller(lambda: Orchestrator.from_settings(settings), app.state.sessionmaker,
                                    settings.job_index_poll_s,
                                    Leadership(settings.resolved_database_url, "jobs-index"), events=events,
                                    idle_interval_s=settings.job_index_idle_poll_s)
            poller.start()
        app.state.job_index_poller = poller
        freeze_startup_heap()
        return_large_buffers()
        try:
            yield
        finally:
            if poller is not None:
                poller.stop()

    app = FastAPI(
        title="Geti Inspect API",
        version="0.1.0",
        description="Visual anomaly detection for factory inspection.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # served offline by install_offline_docs
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_offline_docs(app)
    install_contract(app)
    install_console(app)
    # Added last = runs first: an unauthenticated request is refused before its body is read.
    app.add_middleware(BodyLimitMiddleware, upload_limit=settings.max_upload_bytes,
                       json_limit=settings.max_json_bytes)
    if settings.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, key=settings.api_key.get_secret_value(),
                           pages={"/api/player": active_pipelines.player_html})
    checks: dict[str, HealthCheck] = dict(health_checks or {})

    def jobs_index() -> tuple[bool, str]:
        poller = getattr(app.state, "job_index_poller", None)
        if poller is None:
            return True, "not followed (INSPECT_JOB_INDEX_POLL_S=0)"
        return True, ("leader: this process keeps it in step with Prefect" if poller.leads
                      else "standby: another API process keeps it in step with Prefect")

    checks.setdefault("jobs-index", jobs_index)

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    def health() -> JSONResponse:
        components: dict[str, dict[str, object]] = {}
        try:
            with app.state.sessionmaker() as session:
                session.execute(text("SELECT 1"))
            components["database"] = {"ok": True, "detail": "reachable"}
        except Exception as error:  # noqa: BLE001 - reported, not raised
            components["database"] = {"ok": False, "detail": str(error)}
        for name, check in checks.items():
            try:
                ok, detail = check()
            except Exception as error:  # noqa: BLE001
                ok, detail = False, str(error)
            components[name] = {"ok": ok, "detail": detail}
        healthy = all(component["ok"] for component in components.values())
        body = {"status": "ok" if healthy else "unavailable", "components": components}
        return JSONResponse(status_code=200 if healthy else 503, content=body)

    for module in (projects, media, predictions, datasets, snapshots, models, trainable_models, backbones, training,
                   jobs, sources, sinks, pipelines, devices, active_pipelines, webrtc, training_schedule, cluster):
        serve_router(app, module.router)
    return app
