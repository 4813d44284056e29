"""HTTP errors shared by resource routers: delete-in-use conflicts and config validation."""

from __future__ import annotations

import uuid

from fastapi import HTTPException
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from infra.database.models import Pipeline


def ensure_unused(session: Session, column: InstrumentedAttribute[uuid.UUID], row_id: uuid.UUID, what: str) -> None:
    """Raise 409 naming every pipeline whose ``column`` points at ``row_id``."""
    users = session.execute(select(Pipeline.id, Pipeline.name).where(column == row_id).order_by(Pipeline.name)).all()
    if users:
        names = ", ".join(f"'{name}' ({pipeline_id})" for pipeline_id, name in users)
        raise HTTPException(
            status_code=409,
            detail=f"{what} {row_id} is used by pipeline(s) {names}; delete or change them first",
        )


def config_error(error: ValidationError) -> HTTPException:
    """A 422 locating each error under body.config.

    Inputs are left out: after restore_masked they can hold stored secrets.
    """
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    for item in errors:
        item["loc"] = ("body", "config", *item["loc"])
    return HTTPException(status_code=422, detail=errors)
