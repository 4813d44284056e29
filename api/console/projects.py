"""The projects page (/ui/): every project with its counts, champion, running lines and last job;
create, rename and delete (after a confirmation that works without scripts)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.console.forms import detail_text, field_errors, require_same_origin, see_other
from api.console.templating import render
from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.schemas.projects import ProjectCreate, ProjectUpdate
from api.services.jobs import OrchestratorDep
from api.services.overview import project_overviews
from api.services.projects import create_project, delete_project, rename_project
from infra.database.media_counts import media_total
from infra.database.models import Model, Pipeline, Project
from infra.orchestration import Orchestrator

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])


def _projects_page(request: Request, session: Session, orchestrator: Orchestrator, status_code: int = 200,
                   **context: Any) -> HTMLResponse:
    context.setdefault("create_errors", {})
    context.setdefault("rename_errors", {})
    return render(request, "projects.html", {"section": "projects", "rows": project_overviews(session, orchestrator),
                                             **context}, status_code=status_code)


@router.get("/ui/", response_class=HTMLResponse)
def projects_page(request: Request, session: SessionDep, orchestrator: OrchestratorDep) -> HTMLResponse:
    return _projects_page(request, session, orchestrator)


@router.post("/ui/projects", response_class=HTMLResponse)
def create(request: Request, session: SessionDep, orchestrator: OrchestratorDep,
           name: Annotated[str, Form()] = "") -> Response:
    try:
        body = ProjectCreate(name=name)
    except ValidationError as error:
        return _projects_page(request, session, orchestrator, 422, create_errors=field_errors(error), new_name=name)
    project = create_project(session, body.name)
    session.commit()
    return see_other(request, f"/ui/projects/{project.id}")


@router.post("/ui/projects/{project_id}/rename", response_class=HTMLResponse)
def rename(request: Request, project_id: uuid.UUID, session: SessionDep, settings: SettingsDep,
           orchestrator: OrchestratorDep, background: BackgroundTasks, name: Annotated[str, Form()] = "") -> Response:
    try:
        body = ProjectUpdate(name=name)
    except ValidationError as error:
        get_or_404(session, Project, project_id)
        return _projects_page(request, session, orchestrator, 422, rename_errors={project_id: field_errors(error)},
                              rename_values={project_id: name})
    rename_project(session, settings, background, project_id, body.name)
    session.commit()
    return see_other(request, "/ui/")


def _delete_context(session: Session, project: Project) -> dict[str, Any]:
    """What a delete takes with it, for the confirmation page."""
    return {
        "project": project,
        "media": media_total(session, project.id),
        "models": session.scalar(select(func.count()).select_from(Model).where(Model.project_id == project.id)),
        "pipelines": session.scalar(select(func.count()).select_from(Pipeline)
                                    .where(Pipeline.project_id == project.id)),
        "section": "projects",
        "errors": {},
    }


@router.get("/ui/projects/{project_id}/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, project_id: uuid.UUID, session: SessionDep) -> HTMLResponse:
    return render(request, "project_delete.html", _delete_context(session, get_or_404(session, Project, project_id)))


@router.post("/ui/projects/{project_id}/delete", response_class=HTMLResponse)
def delete(request: Request, project_id: uuid.UUID, session: SessionDep, store: StoreDep,
           orchestrator: OrchestratorDep, confirm_name: Annotated[str, Form()] = "") -> Response:
    project = get_or_404(session, Project, project_id)
    if confirm_name.strip() != project.name:
        context = _delete_context(session, project)
        context["errors"] = {"confirm_name": "type the project's name exactly as shown to confirm"}
        return render(request, "project_delete.html", context, status_code=422)
    try:
        delete_project(session, store, orchestrator, project_id)
    except HTTPException as error:  # e.g. 409 while one of its lines runs: nothing was deleted
        session.rollback()
        context = _delete_context(session, get_or_404(session, Project, project_id))
        context["errors"] = {"confirm_name": detail_text(error)}
        return render(request, "project_delete.html", context, status_code=error.status_code)
    return see_other(request, "/ui/")
