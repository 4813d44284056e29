"""Read side of snapshots: frozen training-set manifests (creation runs as a flow)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import SessionDep, get_or_404
from api.routing import API_PREFIX
from api.schemas.snapshots import SnapshotCreate, SnapshotOut
from api.services.jobs import OrchestratorDep, submit_or_withdraw
from infra.database.models import Project, Snapshot
from infra.orchestration import JobType

router = APIRouter(prefix=API_PREFIX, tags=["snapshots"])


@router.get("/projects/{project_id}/snapshots", response_model=list[SnapshotOut])
def list_snapshots(project_id: uuid.UUID, session: SessionDep) -> list[Snapshot]:
    get_or_404(session, Project, project_id)
    query = (select(Snapshot).where(Snapshot.project_id == project_id)
             .order_by(Snapshot.created_at.desc(), Snapshot.id.desc()))
    return list(session.scalars(query))


@router.get("/snapshots/{snapshot_id}", response_model=SnapshotOut)
def get_snapshot(snapshot_id: uuid.UUID, session: SessionDep) -> Snapshot:
    return get_or_404(session, Snapshot, snapshot_id)


@router.post("/projects/{project_id}/snapshots", status_code=201, response_model=SnapshotOut)
def create_snapshot(project_id: uuid.UUID, body: SnapshotCreate, session: SessionDep,
                    orchestrator: OrchestratorDep) -> Snapshot:
    """The row exists at once (status pending); the snapshot job freezes the media and makes it ready."""
    get_or_404(session, Project, project_id)
    snapshot = Snapshot(project_id=project_id, name=body.name, status="pending")
    session.add(snapshot)
    session.commit()
    snapshot.job_id = submit_or_withdraw(session, orchestrator, [snapshot], JobType.SNAPSHOT, project_id,
                                         {"snapshot_id": str(snapshot.id)})
    session.commit()
    return snapshot
