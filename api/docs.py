"""Swagger UI and ReDoc that work without internet.

FastAPI's own pages load their JavaScript, CSS and favicon from a CDN, so on a factory network
they stay blank. The pinned `fastapi-offline` wheel ships those files; the app serves them itself
under /api/docs-assets and the pages refer to nothing else. ReDoc's bundle still draws its vendor's
logo from a CDN (no option turns it off): the app serves that one file with the address replaced,
and ReDoc hides an image that does not load.

Pages and assets need no API key (api/access.py): they are the open-source contract, no data.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/api/docs-assets"
DOCS_PATH = "/api/docs"
REDOC_PATH = "/api/redoc"
_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
REDOC_BUNDLE = "redoc.standalone.js"
# The only internet address the bundle fetches from (its sidebar's "API docs by Redocly" logo).
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def offline_redoc_bundle() -> bytes:
    """ReDoc's bundle with its CDN logo address replaced by an empty data URL: the image fails to decode at
    once, without a request, and ReDoc drops it (its onError)."""
    return (_ASSETS_DIR / REDOC_BUNDLE).read_bytes().replace(REDOC_CDN_LOGO, b"data:,")


def install_offline_docs(app: FastAPI) -> None:
    """Serve the docs pages and their assets from this app (create the app with docs_url=redoc_url=None)."""

    # Before the mount, which would otherwise answer this path with the stock file.
    @app.get(f"{ASSETS_PATH}/{REDOC_BUNDLE}", include_in_schema=False)
    def redoc_bundle() -> Response:
        return Response(offline_redoc_bundle(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=3600"})

    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    @app.get(DOCS_PATH, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url(request), title=f"{app.title} - Swagger UI",
            swagger_js_url=asset(request, "swagger-ui-bundle.js"), swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            # No call to the public validator service either.
            swagger_ui_parameters={"validatorUrl": None})

    @app.get(REDOC_PATH, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url(request), title=f"{app.title} - ReDoc",
                              redoc_js_url=asset(request, REDOC_BUNDLE),
                              redoc_favicon_url=asset(request, "favicon.png"), with_google_fonts=False)
