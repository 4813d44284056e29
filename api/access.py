"""Optional API key (``INSPECT_API_KEY``): an ASGI middleware in front of every route.

It sits before routing and body parsing, so a request without the key is refused before any
handler, upload parser or database work runs, and unknown paths answer 401 too (nothing to
probe). Public: ``GET /api/health`` (for load balancers) and the OpenAPI document with its
Swagger page, which describe the open-source contract and hold no data (docs/operations.md).

Pages a browser opens by address cannot send a header: their 401 carries the page itself,
which is static code with no data; it asks for the key and sends it on its own requests.

The web console (``/ui/``) signs a browser in once and then sends a signed session cookie
(``api/session_cookie.py``), which this middleware accepts beside the key for the whole API, so the
console's scripts can call it. A request made with the cookie that changes state (POST, PUT, PATCH,
DELETE, or a WebSocket) must come from a page of this server: its ``Origin`` (else ``Referer``)
must name this host, or it is refused with 403. SameSite=Strict already keeps other *sites* from
sending the cookie; the origin check also refuses other *origins* of the same site (another port
on the same host, such as the Prefect or MLflow UI). Console pages without a valid cookie redirect
to the sign-in page; the sign-in page and the console's static files (code and styles, no data)
are public.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.session_cookie import COOKIE_NAME, SessionCookie

PUBLIC_ROUTES = frozenset({
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
    ("GET", "/docs/oauth2-redirect"),
})
CHALLENGE = {"WWW-Authenticate": "Bearer"}
DETAIL = "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
CROSS_SITE_DETAIL = "cross-site request refused: state-changing requests must come from this server's own pages"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CONSOLE_PREFIX = "/ui/"
SIGN_IN_PATH = "/ui/sign-in"
# Open without a session: the redirects into the console, its sign-in page, its icon and static files.
PUBLIC_CONSOLE_PATHS = frozenset({"/", "/ui", "/favicon.ico", SIGN_IN_PATH})
PUBLIC_CONSOLE_PREFIX = "/ui/static/"


def is_public_console_path(path: str) -> bool:
    return path in PUBLIC_CONSOLE_PATHS or path.startswith(PUBLIC_CONSOLE_PREFIX)


def same_origin(headers: Headers) -> bool | None:
    """Whether the request's ``Origin`` (else ``Referer``) names this server's host; None when it sends neither.

    Compared by host and port (the ``Host`` header the browser sent): a reverse proxy that ends TLS
    changes the scheme, never the host the browser addressed.
    """
    source = headers.get("origin") or headers.get("referer")
    if not source:
        return None
    if source == "null":  # an opaque origin: sandboxed frames, data: URLs, some redirects
        return False
    netloc = urlsplit(source).netloc.lower()
    return bool(netloc) and netloc == (headers.get("host") or "").lower()


def sign_in_redirect(scope: Scope) -> RedirectResponse:
    """303 to the sign-in page, which returns the browser to the console page it asked for."""
    wanted = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
    return RedirectResponse(f"{scope.get('root_path', '')}{SIGN_IN_PATH}?next={quote(wanted, safe='')}",
                            status_code=303)


def presented_keys(headers: Headers) -> list[str | None]:
    """Every credential the request offers: bearer tokens and X-API-Key values.

    An Authorization header that is not ``Bearer <token>`` counts as a wrong key (None): a request
    with ambiguous credentials is refused rather than judged by the one that happens to fit.
    """
    keys: list[str | None] = []
    for value in headers.getlist("authorization"):
        scheme, _, credential = value.partition(" ")
        keys.append(credential.strip() if scheme.lower() == "bearer" and credential.strip() else None)
    keys.extend(headers.getlist("x-api-key"))
    return keys


def key_matches(presented: list[str | None], key: bytes) -> bool:
    """True when at least one key is offered and every offered key is right (a wrong one is never ignored).

    compare_digest on bytes: constant time in the content; every offered key is compared."""
    results = [candidate is not None and hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), key)
               for candidate in presented]
    return bool(results) and all(results)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, key: str, pages: Mapping[str, Callable[[], str]] | None = None) -> None:
        self.app = app
        self._key = key.encode("utf-8")
        self._pages = dict(pages or {})
        self._sessions = SessionCookie(key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if (method, path) in PUBLIC_ROUTES or is_public_console_path(path):
            await self.app(scope, receive, send)
            return
        presented = presented_keys(headers)
        # A request that offers a key is judged by that key alone; the cookie only stands in for a missing one.
        signed_in = not presented and self._sessions.valid(cookie_parser(headers.get("cookie", "")).get(COOKIE_NAME))
        if key_matches(presented, self._key) or signed_in:
            if signed_in and (method in STATE_CHANGING or scope["type"] == "websocket") \
                    and same_origin(headers) is not True:
                await self._refuse_cross_site(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response: Response
        if path.startswith(CONSOLE_PREFIX):
            response = sign_in_redirect(scope)
        elif method == "GET" and path in self._pages:
            response = HTMLResponse(self._pages[path](), status_code=401,
                                    headers={**CHALLENGE, "Cache-Control": "no-cache"})
        else:
            response = JSONResponse({"detail": DETAIL}, status_code=401, headers=CHALLENGE)
        await response(scope, receive, send)

    @staticmethod
    async def _refuse_cross_site(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await JSONResponse({"detail": CROSS_SITE_DETAIL}, status_code=403)(scope, receive, send)


def document_security(schema: dict) -> dict:
    """Declare the key in an OpenAPI document: schemes, a global requirement, a 401 per protected operation.

    With the schemes declared, Swagger's "Authorize" button sends the key on every "Try it out".
    """
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update({
        "bearerKey": {"type": "http", "scheme": "bearer",
                      "description": "INSPECT_API_KEY as a bearer token (required when the server sets it)"},
        "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "INSPECT_API_KEY in the X-API-Key header (required when the server sets it)"},
    })
    schema["security"] = [{"bearerKey": []}, {"apiKeyHeader": []}]
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if (method.upper(), path) in PUBLIC_ROUTES:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            page = "text/html" in responses.get("200", {}).get("content", {})
            # A page's 401 is the page itself, which asks for the key (ApiKeyMiddleware's `pages`).
            content = ({"text/html": {"schema": {"type": "string"}}} if page else
                       {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}})
            responses.setdefault("401", {"description": "INSPECT_API_KEY is set and the request did not send it",
                                         "content": content})
    return schema
