"""Read side of snapshots: frozen training-set manifests (creation runs as a flow)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import SessionDep, get_or_404
from api.schemas.snapshots import SnapshotOut
from infra.database.models import Project, Snapshot

router = APIRouter(tags=["snapshots"])


@router.get("/projects/{project_id}/snapshots", response_model=list[SnapshotOut])
def list_snapshots(project_id: uuid.UUID, session: SessionDep) -> list[Snapshot]:
    get_or_404(session, Project, project_id)
    query = (select(Snapshot).where(Snapshot.project_id == project_id)
             .order_by(Snapshot.created_at.desc(), Snapshot.id.desc()))
    return list(session.scalars(query))


@router.get("/snapshots/{snapshot_id}", response_model=SnapshotOut)
def get_snapshot(snapshot_id: uuid.UUID, session: SessionDep) -> Snapshot:
    return get_or_404(session, Snapshot, snapshot_id)
