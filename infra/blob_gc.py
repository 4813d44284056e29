"""Content-addressed blobs kept exactly as long as a row refers to them, under concurrency.

Identical bytes share one blob, so an upload of bytes X can race a delete of the last row using X:
the upload finds the blob present and inserts its row (not yet committed) while the delete commits,
sees no reference and removes the blob: a row without its bytes. Both sides therefore take the
lock of X's ``blobs`` row (an upsert, held until commit; a row lock on PostgreSQL, the database's
write lock on SQLite) *before* they look:

- a writer (:func:`hold_blobs`, then :func:`ensure_blob`) checks that the bytes are stored, and
  stores them again if not, while holding the lock; its row commits with the lock;
- the collector (:func:`delete_unreferenced_blobs`) looks for references and deletes unreferenced
  bytes while holding the lock, so it either ran entirely before the writer (which then stores the
  bytes again) or sees the writer's committed row (and keeps them).

Locks are always taken in hash order, so two transactions never wait on each other in a cycle.

Images and defect masks are both blobs: a hash is in use while any image or mask column names it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from infra.database.engine import session_scope
from infra.database.models import ActivePipeline, Blob, Capture, Media, Pipeline, SnapshotItem
from infra.storage import ObjectStore, blob_key

log = logging.getLogger(__name__)

_IN_CHUNK = 900  # hashes per IN list / upsert: within SQLite's and PostgreSQL's parameter limits
_COLLECT_BATCH = 20 * _IN_CHUNK  # hashes per collection transaction (a 100,000-media project: 6)
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


def _chunks(hashes: Iterable[str]) -> list[list[str]]:
    ordered = sorted(set(hashes))
    return [ordered[start:start + _IN_CHUNK] for start in range(0, len(ordered), _IN_CHUNK)]


def _upsert_locked(session: Session, chunk: list[str]) -> None:
    """Insert or touch the ``blobs`` rows of ``chunk``: either way the transaction now holds their lock."""
    now = datetime.now(UTC)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # any other database: lock what exists, insert the rest (a duplicate insert fails loudly)
        present = set(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(chunk)).with_for_update()))
        session.add_all(Blob(sha256=digest, held_at=now) for digest in chunk if digest not in present)
        session.flush()
        return
    statement = insert(Blob).values([{"sha256": digest, "held_at": now} for digest in chunk])
    session.execute(statement.on_conflict_do_update(index_elements=[Blob.sha256],
                                                    set_={"held_at": statement.excluded.held_at}))


def hold_blobs(session: Session, hashes: Iterable[str]) -> None:
    """Lock these blobs for the rest of the session's transaction: no collection can remove them meanwhile.

    Take the lock before checking that the bytes are stored (:func:`ensure_blob`) or before reading the
    rows that will refer to them, and commit the referring rows in the same transaction."""
    for chunk in _chunks(hashes):
        _upsert_locked(session, chunk)


def ensure_blob(store: ObjectStore, digest: str, read: Callable[[], bytes]) -> None:
    """Store the bytes of a held blob unless they are there (``read`` is called only when they are not)."""
    key = blob_key(digest)
    if not store.exists(key):
        store.put(key, read())


def store_blob(session: Session, store: ObjectStore, data: bytes, digest: str) -> str:
    """Hold one blob and make sure its bytes are stored; returns ``digest`` (the sha256 of ``data``)."""
    hold_blobs(session, [digest])
    ensure_blob(store, digest, lambda: data)
    return digest


def _in_use(session: Session, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(hashes):
        for column in REFERENCING_COLUMNS:
            found |= set(session.scalars(select(column).where(column.in_(chunk)).distinct()))
    return found


def delete_unreferenced_blobs(session: Session, store: ObjectStore, hashes: Iterable[str]) -> int:
    """Delete the blobs (and thumbnails) among ``hashes`` that no media row, snapshot item or capture uses.

    Commits the session: call it after the deleting rows are committed. Each batch of
    ``_COLLECT_BATCH`` hashes is held, checked, deleted and committed on its own: the lock is never
    held for a whole project, and the files of a batch go in one bulk delete."""
    removed = 0
    session.commit()  # a clean transaction that starts with the lock (SQLite: the latest snapshot)
    ordered = sorted(set(hashes))
    for start in range(0, len(ordered), _COLLECT_BATCH):
        batch = ordered[start:start + _COLLECT_BATCH]
        try:
            hold_blobs(session, batch)
            unused = sorted(set(batch) - _in_use(session, batch))
            store.delete_many(key for digest in unused for key in (blob_key(digest), thumbnail_key(digest)))
            for chunk in _chunks(unused):
                session.execute(delete(Blob).where(Blob.sha256.in_(chunk)))
            session.commit()
        except BaseException:
            session.rollback()
            raise
        removed += len(unused)
    return removed


def delete_unreferenced_blobs_quietly(database_url: str, store: ObjectStore, hashes: list[str]) -> None:
    """Best effort: a blob left behind is only wasted space, never a broken row."""
    try:
        with session_scope(database_url) as session:
            delete_unreferenced_blobs(session, store, hashes)
    except Exception:  # noqa: BLE001 - the caller's own outcome matters more
        log.exception("could not delete unreferenced blobs %s", hashes[:5])
