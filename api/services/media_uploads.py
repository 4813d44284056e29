"""Undoing the blobs of a failed upload; shared by the media upload route and captures added to the dataset."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from infra.blob_gc import delete_unreferenced_blobs
from infra.storage import ObjectStore

log = logging.getLogger(__name__)


def discard_blobs(session: Session, store: ObjectStore, hashes: set[str]) -> None:
    """Undo the blobs of a failed upload, keeping any that existing rows already use."""
    try:
        delete_unreferenced_blobs(session, store, hashes)
    except Exception:  # the original error matters more than a failed cleanup
        log.exception("could not clean up blobs of a failed upload: %s", sorted(hashes))
