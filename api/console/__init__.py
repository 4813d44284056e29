"""The web console: server-rendered pages under /ui/ over the same services as the REST API.

Each page group is a module with its own router (projects, dataset, review, jobs, auth); the
templates and the static files (one stylesheet, a few small ES modules) ship inside this package.
Pages work as plain HTML forms; the scripts add what a form cannot (drag-and-drop upload with
progress, the keyboard review queue, live job progress) by calling the public REST API.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.access import CONSOLE_PREFIX
from api.console import auth, dataset, jobs, lines, model_views, models, projects, review, schedule, training
from api.console.forms import detail_text
from api.console.templating import STATIC_DIR, STATIC_PATH, ConsoleStaticFiles, render, root
from api.routing import serve_router

ROUTERS = (auth.router, projects.router, dataset.router, review.router, jobs.router, models.router, model_views.router,
           training.router, lines.router, schedule.router)


def install_console(app: FastAPI) -> None:
    """Serve the console under /ui/ (static files under /ui/static/); `/` leads to it."""
    app.mount(STATIC_PATH, ConsoleStaticFiles(directory=STATIC_DIR), name="console-static")
    for router in ROUTERS:
        serve_router(app, router)

    # Browsers ask every origin for /favicon.ico, also on pages without an icon link (a JSON answer).
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/", include_in_schema=False)
    @app.get("/ui", include_in_schema=False)
    def to_console(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{root(request)}{CONSOLE_PREFIX}", status_code=307)

    # Console pages answer errors with a page people can read; the API keeps its {"detail": ...}.
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        if not request.url.path.startswith(CONSOLE_PREFIX) or error.status_code < 400:
            return await http_exception_handler(request, error)
        return render(request, "error.html", {"status": error.status_code, "message": detail_text(error)},
                      status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> Response:
        if not request.url.path.startswith(CONSOLE_PREFIX):
            return await request_validation_exception_handler(request, error)
        problems = "; ".join(f"{'.'.join(map(str, item['loc'][1:]))}: {item['msg']}" for item in error.errors())
        return render(request, "error.html", {"status": 422, "message": problems or "invalid request"},
                      status_code=422)
