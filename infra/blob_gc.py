"""Delete content-addressed blobs once no media row, snapshot or capture refers to them.

Images and defect masks are both blobs: a hash is in use while any image or mask column names it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from infra.database.engine import session_scope
from infra.database.models import ActivePipeline, Capture, Media, Pipeline, SnapshotItem
from infra.storage import ObjectStore, blob_key

log = logging.getLogger(__name__)

_IN_CHUNK = 900  # hashes per IN list
# Every column that names a blob (each is indexed): a blob goes only when none of them does.
REFERENCING_COLUMNS = (Media.sha256, Media.mask_sha256, SnapshotItem.sha256, SnapshotItem.mask_sha256,
                       Capture.sha256)


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
    in_use: set[str] = set()
    ordered = sorted(candidates)
    # Bounded IN lists: a 100,000-media project would exceed SQLite's and PostgreSQL's parameter limits.
    for start in range(0, len(ordered), _IN_CHUNK):
        chunk = ordered[start:start + _IN_CHUNK]
        for column in REFERENCING_COLUMNS:
            in_use |= set(session.scalars(select(column).where(column.in_(chunk)).distinct()))
    unused = candidates - in_use
    store.delete_many(key for digest in sorted(unused) for key in (blob_key(digest), thumbnail_key(digest)))
    return len(unused)


def delete_unreferenced_blobs_quietly(database_url: str, store: ObjectStore, hashes: list[str]) -> None:
    """Best effort: a blob left behind is only wasted space, never a broken row."""
    try:
        with session_scope(database_url) as session:
            delete_unreferenced_blobs(session, store, hashes)
    except Exception:  # noqa: BLE001 - the caller's own outcome matters more
        log.exception("could not delete unreferenced blobs %s", hashes[:5])
