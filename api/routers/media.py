"""Project media: upload (decoded and verified), list, download, thumbnails, relabel/resplit, delete.

Blobs are content-addressed: identical bytes are stored once and shared by every media row and
snapshot that names their hash; a blob goes only when nothing refers to it any more.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.media_ingest import DecodedImage, ImageRejected, decode_image, display_filename
from api.schemas.media import (
    MediaLabel,
    MediaOrigin,
    MediaOut,
    MediaPage,
    MediaPatch,
    MediaSplit,
    UploadError,
    UploadLabel,
    UploadResult,
)
from api.upload_limit import UploadLimitRoute
from infra.blob_gc import delete_unreferenced_blobs, thumbnail_key
from infra.database.models import Media, Project
from infra.media_records import ImageFacts, add_media_row
from infra.splits import ANOMALOUS, EVAL, SplitAssigner, assigner_for
from infra.storage import ObjectStore, blob_key, put_blob

log = logging.getLogger(__name__)

router = APIRouter(tags=["media"])

# Served bytes never change for a given media id (the blob is content-addressed).
_BLOB_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}


@router.get("/projects/{project_id}/media", response_model=MediaPage)
def list_media(
    project_id: uuid.UUID,
    session: SessionDep,
    label: MediaLabel | None = None,
    split: MediaSplit | None = None,
    origin: MediaOrigin | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MediaPage:
    get_or_404(session, Project, project_id)
    query = select(Media).where(Media.project_id == project_id)
    for column, value in ((Media.label, label), (Media.split, split), (Media.origin, origin)):
        if value is not None:
            query = query.where(column == value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    # The id breaks created_at ties so that paging is stable.
    rows = session.scalars(query.order_by(Media.created_at.desc(), Media.id.desc()).limit(limit).offset(offset))
    return MediaPage(items=[MediaOut.model_validate(row) for row in rows], total=total, limit=limit, offset=offset)


def add_media(session: Session, store: ObjectStore, project_id: uuid.UUID, filename: str, label: str,
              image: DecodedImage, digest: str, size_bytes: int, assigner: SplitAssigner | None = None) -> Media:
    """The media row (flushed, not committed) of an image whose blob is stored; adds its thumbnail."""
    facts = ImageFacts(sha256=digest, content_type=image.content_type, size_bytes=size_bytes, width=image.width,
                       height=image.height, thumbnail_png=image.thumbnail_png)
    return add_media_row(session, store, project_id, filename, label, facts, assigner=assigner)


def upload_media(
    project_id: uuid.UUID,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="Image files (PNG, JPEG, BMP, TIFF, WEBP)")],
    label: Annotated[UploadLabel, Form(description="normal or anomalous; unlabelled only comes from collection")],
) -> UploadResult:
    get_or_404(session, Project, project_id)
    stored: list[Media] = []
    errors: list[UploadError] = []
    written: set[str] = set()
    assigner = assigner_for(session, project_id)
    try:
        for upload in files:
            filename = display_filename(upload.filename)
            data = upload.file.read()
            try:
                image = decode_image(data, settings.thumbnail_size)
            except ImageRejected as error:
                errors.append(UploadError(filename=filename, detail=str(error)))
                continue
            digest = put_blob(store, data)
            written.add(digest)
            stored.append(add_media(session, store, project_id, filename, label, image, digest, len(data),
                                    assigner))
        if not stored:
            raise HTTPException(status_code=422, detail={
                "message": "no file was stored: none is a decodable image",
                "errors": [error.model_dump() for error in errors],
            })
        session.commit()
    except BaseException:
        session.rollback()
        discard_blobs(session, store, written)
        raise
    items = [MediaOut.model_validate(media) for media in stored]
    return UploadResult(uploaded=len(items), failed=len(errors), items=items, errors=errors)


router.add_api_route(
    "/projects/{project_id}/media", upload_media, methods=["POST"], status_code=201, response_model=UploadResult,
    route_class_override=UploadLimitRoute,
    responses={413: {"description": "The request is larger than the upload limit"},
               422: {"description": "Bad label, or no file is a decodable image"}},
)


def discard_blobs(session: Session, store: ObjectStore, hashes: set[str]) -> None:
    """Undo the blobs of a failed upload, keeping any that existing rows already use."""
    try:
        delete_unreferenced_blobs(session, store, hashes)
    except Exception:  # the original error matters more than a failed cleanup
        log.exception("could not clean up blobs of a failed upload: %s", sorted(hashes))


@router.get("/media/{media_id}", response_class=Response,
            responses={200: {"content": {"image/*": {}}, "description": "The original image bytes"}})
def get_media(media_id: uuid.UUID, session: SessionDep, store: StoreDep) -> Response:
    media = get_or_404(session, Media, media_id)
    data = _read(store, blob_key(media.sha256))
    return Response(content=data, media_type=media.content_type, headers={**_BLOB_HEADERS, "ETag": f'"{media.sha256}"'})


@router.get("/media/{media_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "PNG thumbnail"}})
def get_thumbnail(media_id: uuid.UUID, session: SessionDep, store: StoreDep, settings: SettingsDep) -> Response:
    media = get_or_404(session, Media, media_id)
    key = thumbnail_key(media.sha256)
    try:
        data = store.get(key)
    except FileNotFoundError:
        # Thumbnails are derived data: rebuild one that is missing from the original.
        data = decode_image(_read(store, blob_key(media.sha256)), settings.thumbnail_size).thumbnail_png
        store.put(key, data)
    return Response(content=data, media_type="image/png", headers=_BLOB_HEADERS)


def _read(store: ObjectStore, key: str) -> bytes:
    try:
        return store.get(key)
    except FileNotFoundError as error:
        raise HTTPException(status_code=404, detail="media content is missing from storage") from error


@router.patch("/media/{media_id}", response_model=MediaOut)
def update_media(media_id: uuid.UUID, body: MediaPatch, session: SessionDep) -> MediaOut:
    """Change one item's split and/or label. Anomalous images are evaluation-only: relabelling one
    anomalous moves it to eval, and asking for train with it is refused. Snapshots keep what they froze."""
    media = get_or_404(session, Media, media_id)
    label = body.label or media.label
    if label == ANOMALOUS and body.split not in (None, EVAL):
        raise HTTPException(status_code=422, detail="anomalous images are only used for evaluation: "
                                                    "their split is always eval")
    media.split = EVAL if label == ANOMALOUS else body.split or media.split
    media.label = label
    session.flush()
    return MediaOut.model_validate(media)


@router.delete("/media/{media_id}", status_code=204)
def delete_media(media_id: uuid.UUID, session: SessionDep, store: StoreDep) -> Response:
    media = get_or_404(session, Media, media_id)
    digest = media.sha256
    session.delete(media)
    session.commit()
    # The row goes first: a failure here can orphan a blob, never leave a row without its blob.
    delete_unreferenced_blobs(session, store, [digest])
    return Response(status_code=204)
