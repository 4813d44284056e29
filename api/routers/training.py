"""Start a training job: checks everything that can be checked upfront, then submits the flow.

The model row exists from submission (status "training") and carries the job id; the training
flow turns it "ready" with metrics, or "failed" with the reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from sqlalchemy import func, select

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.schemas.training import TrainAccepted, TrainRequest
from api.services.jobs import OrchestratorDep, submit_or_withdraw
from api.services.training_parameters import training_parameters
from infra.database.models import Media, Model, Project, Snapshot, SnapshotItem
from infra.orchestration import JobType

router = APIRouter(tags=["training"])


def _normal_count(session: SessionDep, project_id: uuid.UUID, snapshot: Snapshot | None) -> int:
    if snapshot is not None:
        query = select(func.count()).where(SnapshotItem.snapshot_id == snapshot.id, SnapshotItem.label == "normal")
    else:
        query = select(func.count()).where(Media.project_id == project_id, Media.label == "normal")
    return session.scalar(query) or 0


@router.post("/projects/{project_id}/train", status_code=202, response_model=TrainAccepted)
def start_training(project_id: uuid.UUID, body: TrainRequest, session: SessionDep, settings: SettingsDep,
                   store: StoreDep, orchestrator: OrchestratorDep) -> TrainAccepted:
    get_or_404(session, Project, project_id)
    parameters = training_parameters(body, settings, store)

    snapshot = None
    if body.snapshot_id is not None:
        snapshot = session.get(Snapshot, body.snapshot_id)
        if snapshot is None or snapshot.project_id != project_id:
            raise HTTPException(status_code=404, detail=f"Snapshot {body.snapshot_id} not found in this project")
        if snapshot.status != "ready":
            raise HTTPException(status_code=409, detail=f"Snapshot {snapshot.id} is {snapshot.status}, not ready")
    normal = _normal_count(session, project_id, snapshot)
    if normal < settings.min_normal_images:
        where = f"snapshot {snapshot.id}" if snapshot else "the project"
        raise HTTPException(status_code=422, detail=f"Training needs at least {settings.min_normal_images} normal "
                                                    f"images; {where} has {normal}")

    created: list[Snapshot | Model] = []
    name = body.model_name or f"{body.architecture} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    if snapshot is None:
        snapshot = Snapshot(project_id=project_id, name=f"Training set of {name}"[:255], status="pending")
        session.add(snapshot)
        session.flush()
        created.append(snapshot)
    model = Model(project_id=project_id, name=name, architecture=body.architecture, parameters=parameters,
                  status="training", snapshot_id=snapshot.id)
    session.add(model)
    created.append(model)
    session.commit()

    freeze = snapshot.status == "pending"
    job_id = submit_or_withdraw(session, orchestrator, created[::-1], JobType.TRAINING, project_id,
                                {"model_id": str(model.id), "freeze": freeze}, extra_tags=[f"model:{model.id}"])
    model.job_id = job_id
    if freeze:
        snapshot.job_id = job_id
    session.commit()
    return TrainAccepted(job_id=job_id, model_id=model.id, snapshot_id=snapshot.id)
