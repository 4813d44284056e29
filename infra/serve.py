"""Run the API (and, as later components land, the processes it supervises)."""

from __future__ import annotations

import logging

import uvicorn

from infra.settings import Settings

log = logging.getLogger(__name__)


def run_platform(settings: Settings) -> None:
    from api.app import create_app

    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    log.info("API:      http://%s:%d/api  (docs: /api/docs)", settings.host, settings.port)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
