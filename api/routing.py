"""Routers built once per process and served by every app made from them."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

API_PREFIX = "/api"  # the REST API's routers carry it themselves, so that their routes are complete at import


def serve_router(app: FastAPI, router: APIRouter) -> None:
    """Serve `router`'s routes on `app` as they were built: their paths, tags and dependencies are the router's.

    `app.include_router` would make every app analyse every route again: FastAPI 0.150 builds an effective copy of
    each included route per app (its dependencies, its response model), about 0.1 CPU-s per app here, a third of
    a short API test. A route holds nothing of an app (`request.app` is how a handler reaches it)."""
    app.router.routes.extend(router.routes)
