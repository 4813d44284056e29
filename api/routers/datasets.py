"""A project's dataset in and out: imports (MVTec AD or flat; a zip upload or a server folder) and MVTec export.

An import is a job (``flows/dataset_import.py``); what can be known from the names alone is checked
here first and refused with 422 (not a zip, unknown layout, a zip bomb, too many files, a folder outside
``INSPECT_ALLOWED_PATHS``), so a job only starts for a dataset it can work on. The uploaded zip goes to
object storage before the job starts: the flow may run on another machine. Files the job cannot take
(non-images, masks of the wrong size, ...) are refused one by one in its metrics.

The export is streamed, whatever the project's size (see :mod:`infra.datasets.export`): one image in memory at
a time and nothing written anywhere, so a job (and a second copy of the dataset in storage) buys nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.routing import API_PREFIX
from api.schemas.jobs import JobAccepted
from api.services.jobs import OrchestratorDep, submit_job
from infra.configs.confinement import Confinement
from infra.database.models import Media, Project
from infra.datasets.export import FORMATS, ExportItem, mvtec_members, stream_zip
from infra.datasets.layout import LayoutError, plan_import
from infra.datasets.sources import DatasetSource, FolderSource, ImportLimits, ImportRefused, ZipSource
from infra.orchestration import JobType, OrchestrationUnavailable, Orchestrator
from infra.settings import Settings
from infra.splits import ANOMALOUS, NORMAL
from infra.storage import ObjectStore, blob_key

log = logging.getLogger(__name__)

router = APIRouter(prefix=API_PREFIX, tags=["datasets"])


class ImportFromPath(BaseModel):
    """A folder on the server (inside INSPECT_ALLOWED_PATHS) that the API and the training workers can read."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)


_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"], "additionalProperties": False,
                "properties": {"file": {"type": "string", "format": "binary",
                                        "description": "zip archive in the MVTec AD or the flat layout"}}}},
            "application/json": {"schema": ImportFromPath.model_json_schema()},
        },
    },
}


def import_archive_key(project_id: uuid.UUID) -> str:
    """Where an uploaded archive waits for its job (under the project: deleting the project removes it)."""
    return f"projects/{project_id}/imports/{uuid.uuid4()}.zip"


@router.post("/projects/{project_id}/imports", status_code=202, response_model=JobAccepted,
             openapi_extra=_IMPORT_BODY,
             responses={415: {"description": "Neither a multipart upload nor JSON"},
                        422: {"description": "Not a zip, unknown layout, too large (zip bomb), a folder not allowed"}})
async def start_import(project_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep,
                       store: StoreDep, orchestrator: OrchestratorDep) -> JobAccepted:
    """Import a dataset: a zip upload (multipart field `file`) or `{"path": ...}` of a server folder.

    Layouts: MVTec AD (`train/good/`, `test/good/`, `test/<defect>/`, `ground_truth/<defect>/<name>_mask.png`) or
    flat (`normal/`, `anomalous/`, optional `masks/`). The job's metrics report `added`, `duplicates` and
    `refused` (each file with its reason).
    """
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=1) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(status_code=422, detail="send the zip archive in the multipart field 'file'")
            return await run_in_threadpool(_import_archive, session, settings, store, orchestrator, project_id,
                                           upload.file)
    if content_type.startswith("application/json"):
        try:
            body = ImportFromPath.model_validate_json(await request.body())
        except ValidationError as error:
            raise RequestValidationError(error.errors(include_url=False, include_input=False)) from error
        return await run_in_threadpool(_import_folder, session, settings, orchestrator, project_id, body.path)
    raise HTTPException(status_code=415, detail="send a zip archive as multipart/form-data (field 'file') "
                                                'or JSON {"path": "<folder on the server>"}')


def _checked_plan(source: DatasetSource) -> None:
    """422 unless the source's names fit a layout and name at least one image."""
    try:
        plan = plan_import(source.names)
    except LayoutError as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    if not plan.images:
        raise HTTPException(status_code=422, detail=f"the dataset ({plan.layout} layout) holds no image in its "
                                                    "image folders")


def _import_archive(session: Session, settings: Settings, store: ObjectStore, orchestrator: Orchestrator,
                    project_id: uuid.UUID, archive: BinaryIO) -> JobAccepted:
    get_or_404(session, Project, project_id)
    try:
        with ZipSource(archive, ImportLimits.from_settings(settings)) as source:
            _checked_plan(source)
    except ImportRefused as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    archive.seek(0)
    key = import_archive_key(project_id)
    store.put_fileobj(key, archive)
    try:
        return _submit(session, orchestrator, project_id, {"archive_key": key})
    except BaseException:
        store.delete(key)  # no job will read it
        raise


def _import_folder(session: Session, settings: Settings, orchestrator: Orchestrator, project_id: uuid.UUID,
                   path: str) -> JobAccepted:
    get_or_404(session, Project, project_id)
    try:
        with FolderSource(path, ImportLimits.from_settings(settings), Confinement.from_settings(settings)) as source:
            _checked_plan(source)
    except ImportRefused as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    return _submit(session, orchestrator, project_id, {"path": str(source.root)})


def _submit(session: Session, orchestrator: Orchestrator, project_id: uuid.UUID, source: dict[str, str]
            ) -> JobAccepted:
    try:
        job_id = submit_job(session, orchestrator, JobType.IMPORT, project_id,
                            {"project_id": str(project_id), **source})
    except OrchestrationUnavailable as error:
        raise HTTPException(status_code=503, detail=f"Job orchestration unavailable: {error}") from error
    return JobAccepted(job_id=job_id)


@router.get("/projects/{project_id}/dataset", response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}},
                             "description": "The project's labelled media, masks and defect types as a zip"}})
def export_dataset(project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                   export_format: Annotated[Literal[FORMATS], Query(alias="format")],  # type: ignore[valid-type]
                   ) -> StreamingResponse:
    """The project's dataset as a zip in the MVTec AD layout (streamed): imports back into an equal project.

    Normal images go to `train/good/` or `test/good/` by split, anomalous ones to `test/<defect type>/`
    (`test/anomalous/` without one) with their masks in `ground_truth/`; unlabelled images are left out.
    """
    project = get_or_404(session, Project, project_id)
    rows = session.execute(select(Media.filename, Media.label, Media.split, Media.sha256, Media.mask_sha256,
                                  Media.defect_type)
                           .where(Media.project_id == project_id, Media.label.in_((NORMAL, ANOMALOUS)))
                           .order_by(Media.created_at, Media.id)).all()
    members = mvtec_members(ExportItem(*row) for row in rows)
    filename = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{project.name}-{export_format}.zip")
    return StreamingResponse(stream_zip(members, _fetcher(store)), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _fetcher(store: ObjectStore):  # noqa: ANN202 - a closure over the store
    def fetch(sha256: str) -> bytes | None:
        try:
            return store.get(blob_key(sha256))
        except FileNotFoundError:  # its media was deleted while the archive streamed
            log.warning("blob %s left out of a dataset export: gone from storage", sha256[:12])
            return None

    return fetch
