"""Storing the frames a live pipeline collects as project media, within the per-project cap.

Runs on the pipeline's collector thread (never on the frame path). Each frame is one short
transaction: blob, media row (``origin="collected"``, the pipeline and its score), then the
oldest collected media beyond ``INSPECT_MAX_COLLECTED_MEDIA`` go; their blobs follow after the
commit when nothing else refers to them. Uploaded media are never removed by the cap.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from infra.blob_gc import delete_unreferenced_blobs_quietly
from infra.database.engine import session_scope
from infra.media_records import COLLECTED, ImageFacts, add_media_row, trim_collected
from infra.storage import ObjectStore, put_blob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectedFrame:
    """A frame to store: its PNG (raw, no overlay), facts for the media row, label and score."""

    png: bytes
    image: ImageFacts
    label: str
    score: float
    timestamp: datetime
    frame_index: int

    @property
    def filename(self) -> str:
        return f"collected-{self.timestamp:%Y%m%dT%H%M%S%f}-{self.frame_index}.png"


class CollectedMediaWriter:
    """``writer(frame)`` stores one collected frame of ``pipeline_id`` in ``project_id``; raises on failure."""

    def __init__(self, database_url: str, store: ObjectStore, project_id: uuid.UUID, pipeline_id: uuid.UUID | None,
                 max_collected: int) -> None:
        self._database_url = database_url
        self._store = store
        self._project_id = project_id
        self._pipeline_id = pipeline_id
        self._max_collected = max_collected

    def __call__(self, frame: CollectedFrame) -> None:
        digest = put_blob(self._store, frame.png)
        try:
            with session_scope(self._database_url) as session:
                add_media_row(session, self._store, self._project_id, frame.filename, frame.label, frame.image,
                              origin=COLLECTED, pipeline_id=self._pipeline_id, score=frame.score)
                removed = trim_collected(session, self._project_id, self._max_collected)
        except BaseException:
            delete_unreferenced_blobs_quietly(self._database_url, self._store, [digest])
            raise
        if removed:
            delete_unreferenced_blobs_quietly(self._database_url, self._store, removed)
