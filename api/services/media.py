"""Media rules shared by the REST routes and the console: listing pages, uploads, label and split changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import get_or_404
from api.paging import Page, newest_first_page
from api.schemas.media import MediaOut, UploadError, UploadResult
from api.services.media_uploads import add_media, discard_blobs
from infra.database.media_counts import media_total
from infra.database.models import Media, Project
from infra.images import ImageRejected, decode_image, display_filename
from infra.splits import ANOMALOUS, EVAL, TRAIN, assigner_for
from infra.storage import ObjectStore, put_blob


@dataclass(frozen=True)
class MediaFilter:
    """What a media listing is narrowed to; None means any."""

    label: str | None = None
    split: str | None = None
    origin: str | None = None
    pipeline_id: uuid.UUID | None = None
    defect_type: str | None = None


def media_page(session: Session, project_id: uuid.UUID, where: MediaFilter, limit: int, offset: int) -> Page[Media]:
    """A newest-first page of the project's media (404 for an unknown project)."""
    get_or_404(session, Project, project_id)
    conditions = [Media.project_id == project_id]
    narrowing = ((Media.split, where.split), (Media.origin, where.origin), (Media.pipeline_id, where.pipeline_id),
                 (Media.defect_type, where.defect_type))
    for column, value in ((Media.label, where.label), *narrowing):
        if value is not None:
            conditions.append(column == value)
    # media_counts keeps totals per project and label only: any other filter counts its rows.
    narrowed = any(value is not None for _, value in narrowing)
    known_total = None if narrowed else media_total(session, project_id, where.label)
    return newest_first_page(session, Media, conditions, limit, offset, total=known_total)


def split_counts(session: Session, project_id: uuid.UUID, total: int | None = None) -> dict[str, int]:
    """Media per split. Only `eval` (about a fifth) is counted, over the (project_id, split) index; `train` is
    the rest of the maintained total (`total`, when the caller has it): a fifth of the index entries of a
    GROUP BY over both."""
    evaluation = session.scalar(select(func.count()).select_from(Media)
                                .where(Media.project_id == project_id, Media.split == EVAL)) or 0
    total = media_total(session, project_id) if total is None else total
    return {TRAIN: total - evaluation, EVAL: evaluation}


def upload_images(session: Session, store: ObjectStore, project_id: uuid.UUID,
                  files: Iterable[tuple[str | None, bytes]], label: str, thumbnail_size: int) -> UploadResult:
    """Decode and store every (client filename, bytes); refused files are reported per file.

    Commits the stored ones together. 422 (nothing stored, nothing left behind) when no file is a
    decodable image; any other failure also removes the blobs this call wrote.
    """
    get_or_404(session, Project, project_id)
    stored: list[Media] = []
    errors: list[UploadError] = []
    written: set[str] = set()
    assigner = assigner_for(session, project_id)
    try:
        for raw_name, data in files:
            filename = display_filename(raw_name)
            try:
                image = decode_image(data, thumbnail_size)
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


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()  # a defect type left as it is (None removes it)


def change_media(media: Media, label: str | None, split: str | None, defect_type: str | None | _Keep = KEEP) -> None:
    """A person's decision about one item. Anomalous images are evaluation-only: relabelling one anomalous
    moves it to eval, and asking for train with it is refused (422). Only anomalous items have a defect type
    (relabelling one normal removes it) or a mask (422 until the mask is deleted). Snapshots keep what they froze."""
    new_label = _checked_label(media, label, split, defect_type)
    media.split = EVAL if new_label == ANOMALOUS else split or media.split
    media.label = new_label
    if not isinstance(defect_type, _Keep) or new_label != ANOMALOUS:
        media.defect_type = None if isinstance(defect_type, _Keep) else defect_type


def change_many(session: Session, project_id: uuid.UUID, media_ids: Sequence[uuid.UUID], label: str | None,
                split: str | None) -> int:
    """The same decision for a selection of the project's media: all of them or (422/404) none. Flushes."""
    if not media_ids:
        raise HTTPException(status_code=422, detail="select at least one media item")
    if label is None and split is None:
        raise HTTPException(status_code=422, detail="give a split and/or a label")
    rows = list(session.scalars(select(Media).where(Media.project_id == project_id, Media.id.in_(set(media_ids)))))
    missing = set(media_ids) - {row.id for row in rows}
    if missing:
        raise HTTPException(status_code=404, detail=f"media {sorted(map(str, missing))[0]} is not in this project")
    for row in rows:  # every item is checked before any changes: nothing half-written
        _checked_label(row, label, split, KEEP)
    for row in rows:
        change_media(row, label, split)
    session.flush()
    return len(rows)


def _checked_label(media: Media, label: str | None, split: str | None, defect_type: str | None | _Keep) -> str:
    new_label = label or media.label
    if new_label == ANOMALOUS and split not in (None, EVAL):
        raise HTTPException(status_code=422, detail="anomalous images are only used for evaluation: "
                                                    "their split is always eval")
    if new_label != ANOMALOUS and media.mask_sha256 is not None:
        raise HTTPException(status_code=422, detail=f"media {media.id} has a defect mask: delete it "
                                                    f"(DELETE /api/media/{media.id}/mask) before labelling it "
                                                    f"{new_label}")
    if new_label != ANOMALOUS and defect_type is not None and not isinstance(defect_type, _Keep):
        raise HTTPException(status_code=422, detail=f"only anomalous images have a defect type, not {new_label} ones")
    return new_label
