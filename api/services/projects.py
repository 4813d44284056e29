"""Create, rename and delete projects: the rules the REST routes and the console's forms share."""

from __future__ import annotations

import logging
import uuid

from fastapi import BackgroundTasks
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import get_or_404
from api.services.active_runs import ensure_idle
from api.services.jobs import cancel_training_jobs
from infra.blob_gc import capture_hashes, delete_unreferenced_blobs
from infra.database.models import Media, Model, Pipeline, Project, Snapshot, SnapshotItem
from infra.model_files import model_prefix
from infra.orchestration import OrchestrationUnavailable, Orchestrator
from infra.orchestration.schedules import delete_schedule, settings_key
from infra.settings import Settings
from infra.storage import ObjectStore
from infra.tracking import rename_project_experiment, tracking_uri

log = logging.getLogger(__name__)


def create_project(session: Session, name: str) -> Project:
    """The new project, flushed (the caller's transaction commits it)."""
    project = Project(name=name)
    session.add(project)
    session.flush()
    return project


def rename_project(session: Session, settings: Settings, background: BackgroundTasks, project_id: uuid.UUID,
                   name: str) -> Project:
    project = get_or_404(session, Project, project_id)
    project.name = name
    session.flush()
    # After the response (and the commit): the MLflow experiment follows the project's name.
    background.add_task(_rename_experiment, tracking_uri(settings), project_id, name)
    return project


def _rename_experiment(uri: str, project_id: uuid.UUID, name: str) -> None:
    try:
        rename_project_experiment(uri, project_id, name)
    except Exception:  # noqa: BLE001 - best effort: the next training renames it too
        log.warning("could not rename the MLflow experiment of project %s", project_id, exc_info=True)


def delete_project(session: Session, store: ObjectStore, orchestrator: Orchestrator, project_id: uuid.UUID) -> None:
    """Everything under the project goes: rows, media and capture blobs, model files; its training stops.

    409 (nothing deleted) while one of its pipelines runs. Commits.
    """
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
