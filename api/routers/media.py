"""Project media: upload (decoded and verified), list, download, thumbnails, relabel/resplit, delete.

Blobs are content-addressed: identical bytes are stored once and shared by every media row and
snapshot that names their hash; a blob goes only when nothing refers to it any more.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile

from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.media_ingest import decode_image
from api.schemas.media import (
    MediaLabel,
    MediaOrigin,
    MediaOut,
    MediaPage,
    MediaPatch,
    MediaSplit,
    UploadLabel,
    UploadResult,
)
from api.services.media import MediaFilter, change_media, media_page, upload_images
from infra.blob_gc import delete_unreferenced_blobs, thumbnail_key
from infra.database.models import Media
from infra.storage import ObjectStore, blob_key

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
    pipeline_id: Annotated[uuid.UUID | None, Query(description="only frames this pipeline collected")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MediaPage:
    page = media_page(session, project_id, MediaFilter(label, split, origin, pipeline_id), limit, offset)
    return MediaPage(items=[MediaOut.model_validate(row) for row in page.rows], total=page.total, limit=limit,
                     offset=offset)


def upload_media(
    project_id: uuid.UUID,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="Image files (PNG, JPEG, BMP, TIFF, WEBP)")],
    label: Annotated[UploadLabel, Form(description="normal or anomalous; unlabelled only comes from collection")],
) -> UploadResult:
    return upload_images(session, store, project_id, ((upload.filename, upload.file.read()) for upload in files),
                         label, settings.thumbnail_size)


router.add_api_route(
    "/projects/{project_id}/media", upload_media, methods=["POST"], status_code=201, response_model=UploadResult,
    responses={413: {"description": "The request is larger than the upload limit"},
               422: {"description": "Bad label, or no file is a decodable image"}},
)


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
    change_media(media, body.label, body.split)
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
