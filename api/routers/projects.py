from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, BackgroundTasks, Response
from sqlalchemy import select

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.schemas.projects import ProjectCreate, ProjectOut, ProjectUpdate
from api.services.active_runs import ensure_idle
from api.services.jobs import OrchestratorDep, cancel_training_jobs
from infra.blob_gc import capture_hashes, delete_unreferenced_blobs
from infra.database.models import Media, Model, Pipeline, Project, Snapshot, SnapshotItem
from infra.model_files import model_prefix
from infra.orchestration import OrchestrationUnavailable
from infra.orchestration.schedules import delete_schedule, settings_key
from infra.tracking import rename_project_experiment, tracking_uri

log = logging.getLogger(__name__)

router = APIRouter(tags=["projects"])


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(session: SessionDep) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.created_at.desc())))


@router.post("/projects", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectCreate, session: SessionDep) -> Project:
    project = Project(name=body.name)
    session.add(project)
    session.flush()
    return project


@router.get("/projects/{project_id}", response_model=ProjectOut)
def get_project(project_id: uuid.UUID, session: SessionDep) -> Project:
    return get_or_404(session, Project, project_id)


@router.patch("/projects/{project_id}", response_model=ProjectOut)
def update_project(project_id: uuid.UUID, body: ProjectUpdate, session: SessionDep, settings: SettingsDep,
                   background: BackgroundTasks) -> Project:
    project = get_or_404(session, Project, project_id)
    project.name = body.name
    session.flush()
    # After the response (and the commit): the MLflow experiment follows the project's name.
    background.add_task(_rename_experiment, tracking_uri(settings), project_id, body.name)
    return project


def _rename_experiment(uri: str, project_id: uuid.UUID, name: str) -> None:
    try:
        rename_project_experiment(uri, project_id, name)
    except Exception:  # noqa: BLE001 - best effort: the next training renames it too
        log.warning("could not rename the MLflow experiment of project %s", project_id, exc_info=True)


@router.delete("/projects/{project_id}", status_code=204)
def delete_project(project_id: uuid.UUID, session: SessionDep, store: StoreDep, orchestrator: OrchestratorDep
                   ) -> Response:
    """Everything under the project goes: rows, media and capture blobs, model files; its training stops."""
    project = get_or_404(session, Project, project_id)
    ensure_idle(session, orchestrator, Pipeline.project_id == project_id, f"project {project_id}", "deleting it")
    models = session.execute(select(Model.id, Model.status, Model.job_id).where(Model.project_id == project_id)).all()
    # Images and defect masks of its media and of its snapshots' items.
    media_refs = select(Media.sha256, Media.mask_sha256).where(Media.project_id == project_id)
    frozen_refs = (select(SnapshotItem.sha256, SnapshotItem.mask_sha256).join(Snapshot)
                   .where(Snapshot.project_id == project_id))
    hashes = {digest for query in (media_refs, frozen_refs) for row in session.execute(query) for digest in row
              if digest}
    hashes |= capture_hashes(session, Pipeline.project_id == project_id)
    session.delete(project)
    session.commit()
    # Files go only after the rows are gone, so a failure can orphan a file but never a row.
    delete_unreferenced_blobs(session, store, hashes)
    for model_id, _, _ in models:
        store.delete_prefix(model_prefix(model_id))
    if store.exists(settings_key(project_id)):  # only projects with a schedule talk to Prefect here
        try:
            delete_schedule(orchestrator, store, project_id)
        except OrchestrationUnavailable:  # its runs then fail at once: the project is gone
            log.warning("could not remove the training schedule of deleted project %s", project_id)
    store.delete_prefix(f"projects/{project_id}/")
    cancel_training_jobs(orchestrator, [job_id for _, status, job_id in models if status == "training" and job_id])
    return Response(status_code=204)
