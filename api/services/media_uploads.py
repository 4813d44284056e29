"""Storing a decoded image as project media, and undoing the blobs of a failed upload.

Shared by the media upload route and by captures added to the dataset from a live pipeline.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from infra.blob_gc import delete_unreferenced_blobs
from infra.database.models import Media
from infra.images import DecodedImage
from infra.media_records import ImageFacts, add_media_row
from infra.splits import SplitAssigner
from infra.storage import ObjectStore

log = logging.getLogger(__name__)


def add_media(session: Session, store: ObjectStore, project_id: uuid.UUID, filename: str, label: str,
              image: DecodedImage, digest: str, size_bytes: int, assigner: SplitAssigner | None = None) -> Media:
    """The media row (flushed, not committed) of an image whose blob is stored; adds its thumbnail."""
    facts = ImageFacts(sha256=digest, content_type=image.content_type, size_bytes=size_bytes, width=image.width,
                       height=image.height, thumbnail_png=image.thumbnail_png)
    return add_media_row(session, store, project_id, filename, label, facts, assigner=assigner)


def discard_blobs(session: Session, store: ObjectStore, hashes: set[str]) -> None:
    """Undo the blobs of a failed upload, keeping any that existing rows already use."""
    try:
        delete_unreferenced_blobs(session, store, hashes)
    except Exception:  # the original error matters more than a failed cleanup
        log.exception("could not clean up blobs of a failed upload: %s", sorted(hashes))
