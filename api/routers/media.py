"""Project media: upload (decoded and verified), list, download, thumbnails, defect masks, relabel/resplit, delete.

Blobs are content-addressed: identical bytes are stored once and shared by every media row and
snapshot that names their hash; a blob goes only when nothing refers to it any more. Defect masks
are blobs too (canonical PNGs, :func:`infra.images.normalise_mask`).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile

from api.deps import DecoderDep, SessionDep, StoreDep, get_or_404
from api.routing import API_PREFIX
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
from api.services.media import KEEP, MediaFilter, change_media, media_page, upload_images, upload_reader
from api.services.media_uploads import discard_blobs
from infra.blob_gc import delete_unreferenced_blobs, store_blob, thumbnail_key
from infra.database.models import Media
from infra.images import MaskRejected
from infra.splits import ANOMALOUS
from infra.storage import ObjectStore, blob_key

log = logging.getLogger(__name__)

router = APIRouter(prefix=API_PREFIX, tags=["media"])

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
    defect_type: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MediaPage:
    page = media_page(session, project_id, MediaFilter(label, split, origin, pipeline_id, defect_type), limit,
                      offset)
    return MediaPage(items=[MediaOut.model_validate(row) for row in page.rows], total=page.total, limit=limit,
                     offset=offset)


def upload_media(
    project_id: uuid.UUID,
    session: SessionDep,
    store: StoreDep,
    decoder: DecoderDep,
    files: Annotated[list[UploadFile], File(description="Image files (PNG, JPEG, BMP, TIFF, WEBP)")],
    label: Annotated[UploadLabel, Form(description="normal or anomalous; unlabelled only comes from collection")],
) -> UploadResult:
    return upload_images(session, store, decoder, project_id,
                         ((upload.filename, upload_reader(upload)) for upload in files), label)


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
def get_thumbnail(media_id: uuid.UUID, session: SessionDep, store: StoreDep, decoder: DecoderDep) -> Response:
    media = get_or_404(session, Media, media_id)
    key = thumbnail_key(media.sha256)
    try:
        data = store.get(key)
    except FileNotFoundError:
        # Thumbnails are derived data: rebuild one that is missing from the original.
        data = decoder.decode(_read(store, blob_key(media.sha256))).thumbnail_png
        store.put(key, data)
    return Response(content=data, media_type="image/png", headers=_BLOB_HEADERS)


def _read(store: ObjectStore, key: str) -> bytes:
    try:
        return store.get(key)
    except FileNotFoundError as error:
        raise HTTPException(status_code=404, detail="media content is missing from storage") from error


@router.patch("/media/{media_id}", response_model=MediaOut,
              responses={422: {"description": "A split, label or defect type the item cannot have"}})
def update_media(media_id: uuid.UUID, body: MediaPatch, session: SessionDep) -> MediaOut:
    """Change one item's split, label and/or defect type. Anomalous images are evaluation-only: relabelling one
    anomalous moves it to eval, and asking for train with it is refused. Only anomalous items have a defect
    type (relabelling one normal removes it) or a mask (delete the mask first). Snapshots keep what they froze."""
    media = get_or_404(session, Media, media_id)
    change_media(media, body.label, body.split,
                 body.defect_type if "defect_type" in body.model_fields_set else KEEP)
    session.flush()
    return MediaOut.model_validate(media)


@router.put("/media/{media_id}/mask", response_model=MediaOut,
            responses={422: {"description": "Not an anomalous item, or not a PNG mask of the image's size"}})
def put_mask(media_id: uuid.UUID, session: SessionDep, store: StoreDep, decoder: DecoderDep,
             file: Annotated[UploadFile, File(description="PNG of the image's size; non-zero pixels are defect")],
             ) -> MediaOut:
    """Give an anomalous item its defect mask (replacing any earlier one): training then reports pixel metrics."""
    media = get_or_404(session, Media, media_id)
    if media.label != ANOMALOUS:
        raise HTTPException(status_code=422, detail=f"only anomalous images have a defect mask, not {media.label} ones")
    try:
        mask = decoder.normalise_mask(file.file.read, (media.width, media.height))
    except MaskRejected as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    previous, digest = media.mask_sha256, hashlib.sha256(mask).hexdigest()
    try:
        store_blob(session, store, mask, digest)  # held until the commit (infra/blob_gc.py)
        media.mask_sha256 = digest
        session.commit()
    except BaseException:
        session.rollback()
        discard_blobs(session, store, {digest})
        raise
    if previous not in (None, digest):
        delete_unreferenced_blobs(session, store, [previous])
    return MediaOut.model_validate(media)


@router.get("/media/{media_id}/mask", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "The defect mask: 0 = good, 255 = defect"},
                       404: {"description": "Unknown media, or the item has no mask"}})
def get_mask(media_id: uuid.UUID, session: SessionDep, store: StoreDep) -> Response:
    media = get_or_404(session, Media, media_id)
    if media.mask_sha256 is None:
        raise HTTPException(status_code=404, detail=f"media {media_id} has no defect mask")
    return Response(content=_read(store, blob_key(media.mask_sha256)), media_type="image/png",
                    headers={**_BLOB_HEADERS, "ETag": f'"{media.mask_sha256}"'})


@router.delete("/media/{media_id}/mask", status_code=204, responses={404: {"description": "Unknown media or no mask"}})
def delete_mask(media_id: uuid.UUID, session: SessionDep, store: StoreDep) -> Response:
    media = get_or_404(session, Media, media_id)
    digest = media.mask_sha256
    if digest is None:
        raise HTTPException(status_code=404, detail=f"media {media_id} has no defect mask")
    media.mask_sha256 = None
    session.commit()
    delete_unreferenced_blobs(session, store, [digest])  # snapshots that froze it keep it
    return Response(status_code=204)


@router.delete("/media/{media_id}", status_code=204)
def delete_media(media_id: uuid.UUID, session: SessionDep, store: StoreDep) -> Response:
    media = get_or_404(session, Media, media_id)
    digests = [digest for digest in (media.sha256, media.mask_sha256) if digest]
    session.delete(media)
    session.commit()
    # The row goes first: a failure here can orphan a blob, never leave a row without its blob.
    delete_unreferenced_blobs(session, store, digests)
    return Response(status_code=204)
