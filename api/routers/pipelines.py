"""Pipelines: a model, a source and a sink of one project, plus threshold and frame rate.

The rules (references, following the champion, config merging) live in api/services/pipelines.py,
which the console's lines pages call too.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from api.deps import SessionDep, StoreDep, get_or_404
from api.routing import API_PREFIX
from api.schemas.pipelines import PipelineCreate, PipelineOut, PipelinePatch
from api.services import pipelines
from api.services.active_runs import ensure_idle
from api.services.jobs import OrchestratorDep
from api.services.pipelines import project_pipelines
from infra.blob_gc import capture_hashes, delete_unreferenced_blobs
from infra.database.models import Pipeline

router = APIRouter(prefix=API_PREFIX, tags=["pipelines"])


@router.get("/projects/{project_id}/pipelines", response_model=list[PipelineOut])
def list_pipelines(project_id: uuid.UUID, session: SessionDep) -> list[Pipeline]:
    return project_pipelines(session, project_id)


@router.post("/projects/{project_id}/pipelines", response_model=PipelineOut, status_code=201)
def create_pipeline(project_id: uuid.UUID, body: PipelineCreate, session: SessionDep) -> Pipeline:
    return pipelines.create_pipeline(session, project_id, body)


@router.get("/pipelines/{pipeline_id}", response_model=PipelineOut)
def get_pipeline(pipeline_id: uuid.UUID, session: SessionDep) -> Pipeline:
    return get_or_404(session, Pipeline, pipeline_id)


@router.patch("/pipelines/{pipeline_id}", response_model=PipelineOut)
def update_pipeline(pipeline_id: uuid.UUID, body: PipelinePatch, session: SessionDep) -> Pipeline:
    return pipelines.update_pipeline(session, get_or_404(session, Pipeline, pipeline_id), body)


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
