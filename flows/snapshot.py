"""Snapshot flow: freeze a project's current media into an immutable manifest.

A snapshot item keeps the blob hash, label, split, filename, defect type and mask hash, so deleting
media later never breaks a snapshot (the blobs stay while an item refers to them), and relabelling,
moving or re-masking media later never changes what a model trained on it was fitted and evaluated on.
"""

from __future__ import annotations

import logging
import uuid

from prefect import flow
from prefect.exceptions import TerminationSignal
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flows.common import JobProgress, flow_settings
from flows.run_names import snapshot_run_name
from infra.database.engine import session_scope
from infra.database.models import Media, Snapshot, SnapshotItem

log = logging.getLogger(__name__)


class SnapshotError(RuntimeError):
    pass


def freeze_snapshot(session: Session, snapshot_id: uuid.UUID) -> int:
    """Copy the project's current media into the snapshot's items; returns the item count.

    Running it again on a ready snapshot changes nothing (a retried flow run is harmless).
    """
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise SnapshotError(f"snapshot {snapshot_id} does not exist")
    if snapshot.status == "ready":
        return snapshot.media_count or 0
    media = session.scalars(select(Media).where(Media.project_id == snapshot.project_id)
                            .order_by(Media.created_at, Media.id)).all()
    session.add_all(SnapshotItem(snapshot_id=snapshot.id, media_id=item.id, filename=item.filename,
                                 label=item.label, sha256=item.sha256, split=item.split,
                                 defect_type=item.defect_type, mask_sha256=item.mask_sha256) for item in media)
    snapshot.media_count = len(media)
    snapshot.status = "ready"
    snapshot.error = None
    return len(media)


def mark_snapshot_failed(database_url: str, snapshot_id: uuid.UUID, reason: str) -> None:
    with session_scope(database_url) as session:
        session.execute(update(Snapshot).where(Snapshot.id == snapshot_id, Snapshot.status != "ready")
                        .values(status="failed", error=reason[:2000]))


@flow(name="create-snapshot", flow_run_name=snapshot_run_name, log_prints=True)
def create_snapshot(snapshot_id: str) -> int:
    settings = flow_settings()
    progress = JobProgress("Freezing the project's media")
    progress.update(0.0, stage="snapshot")
    try:
        with session_scope(settings.resolved_database_url) as session:
            count = freeze_snapshot(session, uuid.UUID(snapshot_id))
    except BaseException as error:
        reason = "cancelled" if isinstance(error, TerminationSignal) else str(error) or type(error).__name__
        mark_snapshot_failed(settings.resolved_database_url, uuid.UUID(snapshot_id), reason)
        raise
    log.info("snapshot %s holds %d media", snapshot_id, count)
    progress.done(media_count=count)
    return count
