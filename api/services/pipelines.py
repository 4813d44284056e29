"""Pipelines (lines): create, change and list them, the rules shared by the REST routes and the console.

A pipeline may follow the project's champion instead of naming a model: its `model_id` is then
kept equal to the champion by promotion (`infra/champion.py`), and a running one swaps live.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import get_or_404
from api.schemas.pipelines import PipelineCreate, PipelinePatch
from api.services.guards import config_error
from infra.champion import current_champion
from infra.configs import PipelineConfig
from infra.database.models import Base, Model, Pipeline, Project, Sink, Source

_REFERENCES: dict[str, type[Base]] = {"model_id": Model, "source_id": Source, "sink_id": Sink}


def check_references(session: Session, project_id: uuid.UUID, ids: dict[str, uuid.UUID]) -> None:
    """404 for an unknown model/source/sink; 422 for one of another project (all rows looked up first)."""
    rows = {field: get_or_404(session, _REFERENCES[field], row_id) for field, row_id in ids.items()}
    foreign = [f"{field} {row.id}" for field, row in rows.items() if row.project_id != project_id]
    if foreign:
        raise HTTPException(
            status_code=422,
            detail=f"{', '.join(foreign)} belong(s) to another project than the pipeline ({project_id})",
        )


def model_for(session: Session, project_id: uuid.UUID, follow_champion: bool, model_id: uuid.UUID | None
              ) -> uuid.UUID | None:
    """The model the pipeline runs: the champion (None before there is one) when it follows it, else `model_id`."""
    if not follow_champion:
        if model_id is None:
            raise HTTPException(status_code=422, detail="give model_id, or set follow_champion: true")
        return model_id
    champion = current_champion(session, project_id)
    champion_id = champion.id if champion is not None else None
    if model_id is not None and model_id != champion_id:
        raise HTTPException(status_code=422, detail=f"a pipeline that follows the champion runs the champion "
                                                    f"({champion_id or 'none yet'}), not model {model_id}: "
                                                    f"leave model_id out")
    return champion_id


def merged_config(stored: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The stored config with `changes` applied, validated as a whole (422 at body.config otherwise)."""
    try:
        return PipelineConfig.model_validate({**stored, **changes}).model_dump(mode="json")
    except ValidationError as error:
        raise config_error(error) from None


def project_pipelines(session: Session, project_id: uuid.UUID) -> list[Pipeline]:
    """The project's pipelines, newest first (404 for an unknown project)."""
    get_or_404(session, Project, project_id)
    query = select(Pipeline).where(Pipeline.project_id == project_id).order_by(Pipeline.created_at.desc())
    return list(session.scalars(query))


def create_pipeline(session: Session, project_id: uuid.UUID, body: PipelineCreate) -> Pipeline:
    """A new pipeline row (flushed, not committed); every reference is checked before anything is added."""
    get_or_404(session, Project, project_id)
    given = {"model_id": body.model_id} if body.model_id is not None else {}
    check_references(session, project_id, {**given, "source_id": body.source_id, "sink_id": body.sink_id})
    model_id = model_for(session, project_id, body.follow_champion, body.model_id)
    pipeline = Pipeline(project_id=project_id, name=body.name, model_id=model_id, follow_champion=body.follow_champion,
                        source_id=body.source_id, sink_id=body.sink_id, config=body.config.model_dump(mode="json"))
    session.add(pipeline)
    session.flush()
    return pipeline


def update_pipeline(session: Session, pipeline: Pipeline, body: PipelinePatch) -> Pipeline:
    """Apply a partial change; a running pipeline picks up config and model changes within a second."""
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(status_code=422, detail="nothing to update")
    references = {field: changes[field] for field in _REFERENCES if field in changes}
    check_references(session, pipeline.project_id, references)
    if "follow_champion" in changes or "model_id" in changes:
        follow = changes.get("follow_champion", pipeline.follow_champion)
        given = changes.get("model_id", None if follow else pipeline.model_id)
        changes["model_id"] = model_for(session, pipeline.project_id, follow, given)
    if "config" in changes:
        pipeline.config = merged_config(pipeline.config, changes.pop("config"))
    for field, value in changes.items():
        setattr(pipeline, field, value)
    session.flush()
    return pipeline
