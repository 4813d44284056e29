"""Optional API key (``INSPECT_API_KEY``): an ASGI middleware in front of every route.

It sits before routing and body parsing, so a request without the key is refused before any
handler, upload parser or database work runs, and unknown paths answer 401 too (nothing to
probe). Public: ``GET /api/health`` (for load balancers) and the OpenAPI document with its
Swagger page, which describe the open-source contract and hold no data (docs/operations.md).

Pages a browser opens by address cannot send a header: their 401 carries the page itself,
which is static code with no data; it asks for the key and sends it on its own requests.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_ROUTES = frozenset({
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
    ("GET", "/docs/oauth2-redirect"),
})
CHALLENGE = {"WWW-Authenticate": "Bearer"}
DETAIL = "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


def presented_keys(headers: Headers) -> list[str]:
    """The keys a request offers: the Bearer credential and/or the X-API-Key header."""
    keys = []
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        keys.append(credential.strip())
    if headers.get("x-api-key"):
        keys.append(headers["x-api-key"])
    return keys


def key_matches(presented: list[str], key: bytes) -> bool:
    # compare_digest on bytes: constant time in the content; every offered key is compared.
    results = [hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), key) for candidate in presented]
    return any(results)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, key: str, pages: Mapping[str, Callable[[], str]] | None = None) -> None:
        self.app = app
        self._key = key.encode("utf-8")
        self._pages = dict(pages or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path: str = scope["path"]
        if (method, path) in PUBLIC_ROUTES or key_matches(presented_keys(Headers(scope=scope)), self._key):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response: Response
        if method == "GET" and path in self._pages:
            response = HTMLResponse(self._pages[path](), status_code=401,
                                    headers={**CHALLENGE, "Cache-Control": "no-cache"})
        else:
            response = JSONResponse({"detail": DETAIL}, status_code=401, headers=CHALLENGE)
        await response(scope, receive, send)


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
            operation.setdefault("responses", {}).setdefault("401", {
                "description": "INSPECT_API_KEY is set and the request did not send it",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            })
    return schema
