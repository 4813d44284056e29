"""Model rows as the REST routes and the console both use them: list, promote, delete, export, data counts.

The rules (only a ready model is promoted, a model a line uses is not deleted, one export job per
archive at a time) live here once, so `api/routers/models.py` and the console's forms cannot drift.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services.guards import ensure_unused
from api.services.jobs import cancel_training_jobs, orchestration_errors, submit_job
from infra.champion import AliasNotMoved, NotPromotable, promote, withdraw_alias
from infra.database.models import Model, Pipeline, Snapshot, SnapshotItem
from infra.lru import Lru
from infra.model_files import archive_key, export_name, model_prefix
from infra.orchestration import JobType, Orchestrator
from infra.settings import Settings
from infra.storage import ObjectStore
from infra.storage.base import ObjectStream
from infra.tracking import tracking_uri


def project_models(session: Session, project_id: uuid.UUID) -> list[Model]:
    """The project's models, newest first."""
    return list(session.scalars(select(Model).where(Model.project_id == project_id)
                                .order_by(Model.created_at.desc())))


def promote_model(session: Session, settings: Settings, model: Model) -> Model:
    """Make the model its project's champion and commit (409 when not ready, 503 when MLflow refuses)."""
    try:
        promote(session, model, tracking_uri(settings))
    except NotPromotable as error:
        raise HTTPException(status_code=409, detail=str(error)) from error
    except AliasNotMoved as error:
        session.rollback()
        raise HTTPException(status_code=503, detail=str(error)) from error
    session.commit()
    return model


def delete_model(session: Session, settings: Settings, store: ObjectStore, orchestrator: Orchestrator,
                 model: Model) -> None:
    """Delete the row (409 while a line uses it), withdraw the champion alias, stop its training, then its files."""
    ensure_unused(session, Pipeline.model_id, model.id, "Model")
    model_id = model.id
    training_job = model.job_id if model.status == "training" else None
    session.delete(model)
    session.flush()
    try:  # a deleted champion must not stay MLflow's champion
        withdraw_alias(model, tracking_uri(settings))
    except AliasNotMoved as error:
        session.rollback()
        raise HTTPException(status_code=503, detail=str(error)) from error
    session.commit()
    if training_job is not None:
        cancel_training_jobs(orchestrator, [training_job])
    # Files go only after the row is gone: a failure can orphan files, never leave a row without them.
    store.delete_prefix(model_prefix(model_id))


@dataclass(frozen=True)
class ExportArchive:
    """A model archive ready in storage."""

    stream: ObjectStream
    filename: str


def export_archive(store: ObjectStore, model: Model, export_format: str, compression: str | None
                   ) -> ExportArchive | None:
    """The archive when it is in storage (None while no export has made it)."""
    try:
        stream = store.open_stream(archive_key(model.id, export_format, compression))
    except FileNotFoundError:
        return None
    filename = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model.name}-{export_name(export_format, compression)}.zip")
    return ExportArchive(stream, filename)


def archive_response(archive: ExportArchive) -> StreamingResponse:
    """The archive streamed from the store: any size costs the API one chunk of memory per download."""
    return StreamingResponse(archive.stream.chunks, media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{archive.filename}"',
                                      "Content-Length": str(archive.stream.size)})


def check_exportable(model: Model, export_format: str, compression: str | None) -> None:
    """422 for a compression of another format than OpenVINO; 409 unless the model is ready."""
    if compression is not None and export_format != "openvino":
        raise HTTPException(status_code=422, detail="compression applies to the openvino format only")
    if model.status != "ready":
        raise HTTPException(status_code=409, detail=f"Model {model.id} is {model.status}, not ready")


def export_job(session: Session, orchestrator: Orchestrator, model: Model, export_format: str,
               compression: str | None) -> uuid.UUID:
    """The export job making this archive: the one already running, or a new one (503 without Prefect)."""
    tags = [f"model:{model.id}", f"export:{export_name(export_format, compression)}"]
    with orchestration_errors():
        earlier = orchestrator.list_jobs(model.project_id, JobType.EXPORT, extra_tags=tags)
        active = [job for job in earlier if not job.finished]
        if active:
            return active[0].id
        # Requests that saw the same history share a key, so concurrent ones start one job, not one each;
        # after a failed export the key changes and a new request retries.
        key = f"export:{model.id}:{export_name(export_format, compression)}:after:{earlier[0].id if earlier else '-'}"
        return submit_job(session, orchestrator, JobType.EXPORT, model.project_id,
                          {"model_id": str(model.id), "format": export_format, "compression": compression}, tags,
                          idempotency_key=key)


# -- what each model was trained and evaluated on ------------------------------------------------------

@dataclass(frozen=True)
class SplitCounts:
    """A snapshot's images as training uses them: normal train images fit the model; the eval split and every
    anomalous image (never trained on) evaluate it. Unlabelled items are in neither."""

    train: int
    eval_normal: int
    eval_anomalous: int

    @property
    def eval(self) -> int:
        return self.eval_normal + self.eval_anomalous


_counts: Lru[uuid.UUID, SplitCounts] = Lru(256)


def _count_snapshot(session: Session, snapshot_id: uuid.UUID) -> SplitCounts:
    rows = session.execute(select(SnapshotItem.label, SnapshotItem.split, func.count())
                           .where(SnapshotItem.snapshot_id == snapshot_id)
                           .group_by(SnapshotItem.label, SnapshotItem.split)).all()
    by = {(label, split): count for label, split, count in rows}
    return SplitCounts(train=by.get(("normal", "train"), 0), eval_normal=by.get(("normal", "eval"), 0),
                       eval_anomalous=sum(count for (label, _), count in by.items() if label == "anomalous"))


def split_counts(session: Session, snapshot_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, SplitCounts]:
    """Train/eval counts of each ready snapshot. A ready snapshot never changes, so its counts are kept
    (a project page costs no scan of 100,000 items after the first view)."""
    wanted = {snapshot_id for snapshot_id in snapshot_ids if snapshot_id is not None}
    found = {snapshot_id: counts for snapshot_id in wanted if (counts := _counts.get(snapshot_id)) is not None}
    missing = wanted - found.keys()
    if missing:
        ready = set(session.scalars(select(Snapshot.id).where(Snapshot.id.in_(missing), Snapshot.status == "ready")))
        for snapshot_id in ready:
            found[snapshot_id] = _counts.put(snapshot_id, _count_snapshot(session, snapshot_id))
    return found
