"""Captures of a running line: the newest annotated frame stored (and, if asked, its raw frame added to the
project's media). Shared by the REST route and the console's line view."""

from __future__ import annotations

import hashlib
import uuid

from fastapi import HTTPException
from sqlalchemy.orm import Session

from api.deps import get_or_404
from api.schemas.active_pipelines import CaptureOut
from api.services.active_runs import control_call, running_row
from api.services.media_uploads import discard_blobs
from infra.blob_gc import ensure_blob, hold_blobs
from infra.database.models import Capture, Pipeline
from infra.images import ImageDecoder, ImageRejected
from infra.media_records import add_media_row
from infra.orchestration import Orchestrator
from infra.storage import ObjectStore


def take_capture(session: Session, store: ObjectStore, decoder: ImageDecoder, orchestrator: Orchestrator,
                 active_id: uuid.UUID, add_to_dataset: bool = False, label: str | None = None) -> CaptureOut:
    """Store the running line's newest frame (409 when it is not running, 502 for an unusable frame);
    nothing is left behind when a step fails."""
    if label is not None and not add_to_dataset:
        raise HTTPException(status_code=422, detail="label applies only with add_to_dataset=true")
    row = running_row(session, active_id)
    with control_call(session, orchestrator, row) as control:
        frame = control.capture()
    dataset_png = frame.raw_png or frame.png
    try:
        dataset_image = decoder.decode(dataset_png) if add_to_dataset else None
    except ImageRejected as error:
        raise HTTPException(status_code=502, detail=f"the pipeline sent an unusable frame: {error}") from error
    digest = hashlib.sha256(frame.png).hexdigest()
    written = {digest} | ({dataset_image.sha256} if dataset_image is not None else set())
    try:
        hold_blobs(session, written)  # until the rows commit (infra/blob_gc.py)
        ensure_blob(store, digest, lambda: frame.png)
        capture = Capture(active_pipeline_id=row.id, sha256=digest, anomaly_score=frame.anomaly_score,
                          timestamp=frame.timestamp)
        session.add(capture)
        session.flush()
        media_id = None
        if dataset_image is not None:
            ensure_blob(store, dataset_image.sha256, lambda: dataset_png)
            project_id = get_or_404(session, Pipeline, row.pipeline_id).project_id
            filename = f"capture-{frame.timestamp:%Y%m%dT%H%M%S}-{frame.frame_index}.png"
            media_id = add_media_row(session, store, project_id, filename, label or frame.label, dataset_image).id
        session.commit()
    except BaseException:
        session.rollback()
        discard_blobs(session, store, written)
        raise
    return CaptureOut(id=capture.id, timestamp=capture.timestamp, anomaly_score=capture.anomaly_score,
                      image_url=f"/api/captures/{capture.id}.png", label=frame.label, media_id=media_id)
