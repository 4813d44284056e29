"""Model rows: list, read, delete. Training creates them; export comes with the training flows."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from sqlalchemy import select

from api.deps import SessionDep, StoreDep, get_or_404
from api.routers._guards import ensure_unused
from api.schemas.models import ModelOut
from infra.database.models import Model, Pipeline, Project

router = APIRouter(tags=["models"])


@router.get("/projects/{project_id}/models", response_model=list[ModelOut])
def list_models(project_id: uuid.UUID, session: SessionDep) -> list[Model]:
    get_or_404(session, Project, project_id)
    return list(session.scalars(select(Model).where(Model.project_id == project_id).order_by(Model.created_at.desc())))


@router.get("/models/{model_id}", response_model=ModelOut)
def get_model(model_id: uuid.UUID, session: SessionDep) -> Model:
    return get_or_404(session, Model, model_id)


@router.delete("/models/{model_id}", status_code=204)
def delete_model(model_id: uuid.UUID, session: SessionDep, store: StoreDep) -> Response:
    model = get_or_404(session, Model, model_id)
    ensure_unused(session, Pipeline.model_id, model_id, "Model")
    session.delete(model)
    session.commit()
    # Files go only after the row is gone: a failure can orphan files, never leave a row without them.
    store.delete_prefix(f"models/{model_id}/")
    return Response(status_code=204)
