"""Delete content-addressed blobs once no media row, snapshot or capture refers to them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from infra.database.models import ActivePipeline, Capture, Media, Pipeline, SnapshotItem
from infra.storage import ObjectStore, blob_key


def thumbnail_key(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}.png"


def capture_hashes(session: Session, *pipelines: ColumnElement[bool]) -> set[str]:
    """Blob hashes of the captures taken by the pipelines matching `pipelines` (conditions on Pipeline)."""
    query = (select(Capture.sha256).join(ActivePipeline, Capture.active_pipeline_id == ActivePipeline.id)
             .join(Pipeline, ActivePipeline.pipeline_id == Pipeline.id).where(*pipelines))
    return set(session.scalars(query))


def delete_unreferenced_blobs(session: Session, store: ObjectStore, hashes: Iterable[str]) -> int:
    candidates = set(hashes)
    if not candidates:
        return 0
    in_use = set(session.scalars(select(Media.sha256).where(Media.sha256.in_(candidates))))
    in_use |= set(session.scalars(select(SnapshotItem.sha256).where(SnapshotItem.sha256.in_(candidates))))
    in_use |= set(session.scalars(select(Capture.sha256).where(Capture.sha256.in_(candidates))))
    unused = candidates - in_use
    for digest in unused:
        store.delete(blob_key(digest))
        store.delete(thumbnail_key(digest))
    return len(unused)
