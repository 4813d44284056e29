"""The published OpenAPI document: FastAPI's, plus what the app's middlewares add to every operation.

Middlewares answer before any route runs, so FastAPI cannot see their responses; they are
declared here so that clients (and the contract fuzz test) know every status an operation returns.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.access import document_security
from api.schemas.common import ErrorResponse

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _document_body_limits(schema: dict[str, Any]) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if "requestBody" in operation:
                responses = operation.setdefault("responses", {})
                responses.setdefault("413", error_response(
                    "The body is larger than INSPECT_MAX_JSON_BYTES (JSON) or the upload limit (multipart)"))
                responses.setdefault("400", error_response("Malformed Content-Length header"))


def install_contract(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that completes FastAPI's document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {})["ErrorResponse"] = (
                ErrorResponse.model_json_schema())
            _document_body_limits(schema)
            app.openapi_schema = document_security(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
