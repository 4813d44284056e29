from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Response
from sqlalchemy import select

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.routing import API_PREFIX
from api.schemas.projects import ProjectCreate, ProjectOut, ProjectUpdate
from api.services.jobs import OrchestratorDep
from api.services.projects import create_project as create_project_row
from api.services.projects import delete_project as delete_project_everything
from api.services.projects import rename_project
from infra.database.models import Project

router = APIRouter(prefix=API_PREFIX, tags=["projects"])


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(session: SessionDep) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.created_at.desc())))


@router.post("/projects", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectCreate, session: SessionDep) -> Project:
    return create_project_row(session, body.name)


@router.get("/projects/{project_id}", response_model=ProjectOut)
def get_project(project_id: uuid.UUID, session: SessionDep) -> Project:
    return get_or_404(session, Project, project_id)


@router.patch("/projects/{project_id}", response_model=ProjectOut)
def update_project(project_id: uuid.UUID, body: ProjectUpdate, session: SessionDep, settings: SettingsDep,
                   background: BackgroundTasks) -> Project:
    return rename_project(session, settings, background, project_id, body.name)


@router.delete("/projects/{project_id}", status_code=204)
def delete_project(project_id: uuid.UUID, session: SessionDep, store: StoreDep, orchestrator: OrchestratorDep
                   ) -> Response:
    """Everything under the project goes: rows, media and capture blobs, model files; its training stops."""
    delete_project_everything(session, store, orchestrator, project_id)
    return Response(status_code=204)
