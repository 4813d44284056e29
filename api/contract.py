"""The published OpenAPI document: FastAPI's, plus the responses FastAPI cannot see.

Middlewares (API key, body limits) and the global error handlers (``api/errors.py``) answer
outside the route functions, so their statuses are declared here for every operation they apply
to, derived from each route's dependencies rather than listed by hand: a route added later gets
them too. Statuses a route raises itself are declared on the route (``responses=``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from api.access import document_security
from api.deps import get_session
from api.schemas.common import ErrorResponse
from api.services.jobs import get_orchestrator

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _dependencies_by_operation(app: FastAPI) -> dict[tuple[str, str], set[Callable[..., Any]]]:
    found: dict[tuple[str, str], set[Callable[..., Any]]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path:
            for method in route.methods:
                found[(method.lower(), context.path)] = set(_calls(route.dependant))
    return found


def _complete(schema: dict[str, Any], dependencies: dict[tuple[str, str], set[Callable[..., Any]]]) -> None:
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            uses = dependencies.get((method, path), set())

            def declare(status: str, description: str, responses: dict[str, Any] = responses) -> None:
                responses.setdefault(status, error_response(description))

            if "422" in responses:
                # Our 422s carry a message or FastAPI's error list: {"detail": str | list}.
                responses["422"] = error_response("Invalid request")
            if "requestBody" in operation:
                declare("413", "The body is larger than INSPECT_MAX_JSON_BYTES (JSON) or the upload limit (multipart)")
                declare("400", "Malformed Content-Length header")
            if get_session in uses:
                if "{" in path:
                    declare("404", "No row has the id in the path")
                declare("409", "The change conflicts with stored data or the resource's state; nothing was saved")
                declare("503", "The database is unavailable; nothing was saved")
            if get_orchestrator in uses:
                declare("503", "Job orchestration (Prefect) is unavailable")


def install_contract(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that completes FastAPI's document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {})["ErrorResponse"] = (
                ErrorResponse.model_json_schema())
            _complete(schema, _dependencies_by_operation(app))
            app.openapi_schema = document_security(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
