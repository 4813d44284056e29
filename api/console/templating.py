"""Rendering console pages: one Jinja2 environment, the context every page gets, and the page headers.

Templates are compiled once per process (Jinja's cache) and autoescape everything, so text a
client stored (project names, filenames) is shown, never interpreted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from api.schemas.common import to_utc_z
from infra.ui_links import ui_links

PACKAGE_DIR = Path(__file__).parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
STATIC_PATH = "/ui/static"

# Everything a page loads comes from this server: no CDN, font or script from elsewhere can run,
# and other sites cannot frame the console.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
                           "form-action 'self'")
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


def root(request: Request) -> str:
    """The path prefix the app is mounted under (a reverse proxy's root_path), for absolute links."""
    return request.scope.get("root_path", "")


def _common_context(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    base = root(request)
    return {
        "root": base,
        "auth_enabled": settings.api_key is not None,
        "ui": ui_links(settings, request.url.hostname),
        "static": lambda name: f"{base}{STATIC_PATH}/{name}",
    }


def _when(value: datetime | None) -> str:
    """UTC time as people read it; the page's script shows it in the browser's time zone."""
    if value is None:
        return "—"
    return to_utc_z(value)[:16].replace("T", " ") + " UTC"


def _iso(value: datetime | None) -> str:
    return to_utc_z(value) if value is not None else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _count(value: int | None) -> str:
    return f"{value or 0:,}"


templates = Jinja2Templates(directory=TEMPLATES_DIR, context_processors=[_common_context])
templates.env.filters.update(when=_when, iso=_iso, duration=_duration, count=_count)


def render(request: Request, name: str, context: Mapping[str, Any] | None = None, status_code: int = 200
           ) -> HTMLResponse:
    return templates.TemplateResponse(request, name, dict(context or {}), status_code=status_code,
                                      headers=PAGE_HEADERS)


class ConsoleStaticFiles(StaticFiles):
    """The console's code and styles, revalidated on every use (ETag): an upgrade never runs stale scripts,
    and the scripts import each other by plain relative URLs (one instance of each module per page)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
