"""FastAPI dependencies: database session, object store, settings, row lookups."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from infra.database.engine import transaction
from infra.database.models import Base
from infra.images import ImageDecoder
from infra.settings import Settings
from infra.storage import ObjectStore

RowT = TypeVar("RowT", bound=Base)


def get_session(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.sessionmaker) as session:
        yield session


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_decoder(request: Request) -> ImageDecoder:
    return request.app.state.image_decoder


# scope="function": the teardown (commit) runs before the response is sent, so a 2xx means committed;
# the default scope would commit after the client already heard 2xx.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DecoderDep = Annotated[ImageDecoder, Depends(get_decoder)]


def get_or_404(session: Session, model: type[RowT], row_id: uuid.UUID) -> RowT:
    row = session.get(model, row_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"{model.__name__} {row_id} not found")
    return row
