"""Project media rows: adding one (with its split and thumbnail) and capping collected media.

Shared by the API (uploads, captures) and the live pipelines' data collection, so that every way
in assigns the split by the same rule (:mod:`infra.splits`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infra.blob_gc import thumbnail_key
from infra.database.models import Media
from infra.splits import ANOMALOUS, Split, SplitAssigner, assigner_for, split_for_new_media
from infra.storage import ObjectStore

UPLOADED, COLLECTED = "uploaded", "collected"
ORIGINS = (UPLOADED, COLLECTED)


@dataclass(frozen=True)
class ImageFacts:
    """What is known about a stored blob: its hash, size, format and a PNG thumbnail (None: already stored)."""

    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    thumbnail_png: bytes | None


def add_media_row(session: Session, store: ObjectStore, project_id: uuid.UUID, filename: str, label: str,
                  image: ImageFacts, *, assigner: SplitAssigner | None = None, origin: str = UPLOADED,
                  pipeline_id: uuid.UUID | None = None, score: float | None = None, split: Split | None = None,
                  defect_type: str | None = None, mask_sha256: str | None = None) -> Media:
    """The media row (flushed, not committed) of an image whose blob is stored; adds its thumbnail.

    Pass one ``assigner`` for a batch so the batch's images count towards each other's split. ``split``
    decides the split instead of the rules (a dataset that brings its own, e.g. MVTec's ``test/``); anomalous
    images stay in eval whatever it says.
    """
    if image.thumbnail_png is not None and not store.exists(thumbnail_key(image.sha256)):
        store.put(thumbnail_key(image.sha256), image.thumbnail_png)
    assigner = assigner or assigner_for(session, project_id)
    if split is None or label == ANOMALOUS:
        split = split_for_new_media(session, assigner, project_id, label, image.sha256)
    else:
        assigner.record(label, split)
    media = Media(project_id=project_id, filename=filename, label=label, sha256=image.sha256,
                  content_type=image.content_type, size_bytes=image.size_bytes, width=image.width,
                  height=image.height, split=split, origin=origin, pipeline_id=pipeline_id, score=score,
                  defect_type=defect_type, mask_sha256=mask_sha256)
    session.add(media)
    session.flush()
    return media


def trim_collected(session: Session, project_id: uuid.UUID, keep: int) -> list[str]:
    """Delete the project's oldest collected media beyond ``keep`` (uploaded media are never touched).

    Returns the blob hashes of the deleted rows; call :func:`infra.blob_gc.delete_unreferenced_blobs`
    with them after the commit (a row goes before its blob, never the other way round).
    """
    total = session.scalar(select(func.count()).select_from(Media)
                           .where(Media.project_id == project_id, Media.origin == COLLECTED)) or 0
    if total <= keep:
        return []
    oldest = session.scalars(select(Media).where(Media.project_id == project_id, Media.origin == COLLECTED)
                             .order_by(Media.created_at, Media.id).limit(total - keep)).all()
    hashes = [media.sha256 for media in oldest]
    for media in oldest:
        session.delete(media)
    session.flush()
    return hashes

