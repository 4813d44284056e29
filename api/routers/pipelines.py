"""Pipelines: a model, a source and a sink of one project, plus threshold and frame rate.

A pipeline may follow the project's champion instead of naming a model: its `model_id` is then
kept equal to the champion by promotion (`infra/champion.py`), and a running one swaps live.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import SessionDep, StoreDep, get_or_404
from api.schemas.pipelines import PipelineCreate, PipelineOut, PipelinePatch
from api.services.active_runs import ensure_idle
from api.services.guards import config_error
from api.services.jobs import OrchestratorDep
from infra.blob_gc import capture_hashes, delete_unreferenced_blobs
from infra.champion import current_champion
from infra.configs import PipelineConfig
from infra.database.models import Base, Model, Pipeline, Project, Sink, Source

router = APIRouter(tags=["pipelines"])

_REFERENCES: dict[str, type[Base]] = {"model_id": Model, "source_id": Source, "sink_id": Sink}


def _check_references(session: Session, project_id: uuid.UUID, ids: dict[str, uuid.UUID]) -> None:
    """404 for an unknown model/source/sink; 422 for one of another project (all rows looked up first)."""
    rows = {field: get_or_404(session, _REFERENCES[field], row_id) for field, row_id in ids.items()}
    foreign = [f"{field} {row.id}" for field, row in rows.items() if row.project_id != project_id]
    if foreign:
        raise HTTPException(
            status_code=422,
            detail=f"{', '.join(foreign)} belong(s) to another project than the pipeline ({project_id})",
        )


def _model_for(session: Session, project_id: uuid.UUID, follow_champion: bool, model_id: uuid.UUID | None
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


def _merged_config(stored: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    try:
        return PipelineConfig.model_validate({**stored, **changes}).model_dump(mode="json")
    except ValidationError as error:
        raise config_error(error) from None


@router.get("/projects/{project_id}/pipelines", response_model=list[PipelineOut])
def list_pipelines(project_id: uuid.UUID, session: SessionDep) -> list[Pipeline]:
    get_or_404(session, Project, project_id)
    query = select(Pipeline).where(Pipeline.project_id == project_id).order_by(Pipeline.created_at.desc())
    return list(session.scalars(query))


@router.post("/projects/{project_id}/pipelines", response_model=PipelineOut, status_code=201)
def create_pipeline(project_id: uuid.UUID, body: PipelineCreate, session: SessionDep) -> Pipeline:
    get_or_404(session, Project, project_id)
    given = {"model_id": body.model_id} if body.model_id is not None else {}
    _check_references(session, project_id, {**given, "source_id": body.source_id, "sink_id": body.sink_id})
    model_id = _model_for(session, project_id, body.follow_champion, body.model_id)
    pipeline = Pipeline(project_id=project_id, name=body.name, model_id=model_id, follow_champion=body.follow_champion,
                        source_id=body.source_id, sink_id=body.sink_id, config=body.config.model_dump(mode="json"))
    session.add(pipeline)
    session.flush()
    return pipeline


@router.get("/pipelines/{pipeline_id}", response_model=PipelineOut)
def get_pipeline(pipeline_id: uuid.UUID, session: SessionDep) -> Pipeline:
    return get_or_404(session, Pipeline, pipeline_id)


@router.patch("/pipelines/{pipeline_id}", response_model=PipelineOut)
def update_pipeline(pipeline_id: uuid.UUID, body: PipelinePatch, session: SessionDep) -> Pipeline:
    pipeline = get_or_404(session, Pipeline, pipeline_id)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(status_code=422, detail="nothing to update")
    references = {field: changes[field] for field in _REFERENCES if field in changes}
    _check_references(session, pipeline.project_id, references)
    if "follow_champion" in changes or "model_id" in changes:
        follow = changes.get("follow_champion", pipeline.follow_champion)
        given = changes.get("model_id", None if follow else pipeline.model_id)
        changes["model_id"] = _model_for(session, pipeline.project_id, follow, given)
    if "config" in changes:
        pipeline.config = _merged_config(pipeline.config, changes.pop("config"))
    for field, value in changes.items():
        setattr(pipeline, field, value)
    session.flush()
    return pipeline


@router.delete("/pipelines/{pipeline_id}", status_code=204)
def delete_pipeline(pipeline_id: uuid.UUID, session: SessionDep, store: StoreDep, orchestrator: OrchestratorDep
                    ) -> Response:
    pipeline = get_or_404(session, Pipeline, pipeline_id)
    ensure_idle(session, orchestrator, Pipeline.id == pipeline_id, f"pipeline {pipeline_id}", "deleting it")
    captured = capture_hashes(session, Pipeline.id == pipeline_id)
    session.delete(pipeline)
    session.commit()
    delete_unreferenced_blobs(session, store, captured)  # its captures' PNGs, unless a media row uses one
    return Response(status_code=204)
