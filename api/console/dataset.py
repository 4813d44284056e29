"""The dataset page (/ui/projects/{id}) and the media preview (/ui/media/{id}).

Counts by label and split, upload (a plain multipart form; upload.js sends batches to the REST upload
with per-file progress), a filtered thumbnail gallery in pages, and label/split changes for one item
or a selection. Every write goes through the media services the REST routes use.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.console.forms import choice, detail_text, field_errors, kept_query, require_same_origin, see_other
from api.console.navigation import PROJECT_TABS
from api.console.templating import render
from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.schemas.media import MediaLabel, MediaOrigin, MediaPatch, MediaSplit, UploadLabel, UploadResult
from api.services.media import MediaFilter, change_many, change_media, media_page, split_counts, upload_images
from infra.database.models import Media, MediaCount, Model, Pipeline, Project

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

PAGE_SIZE = 48
LABELS: tuple[str, ...] = get_args(MediaLabel)
UPLOAD_LABELS: tuple[str, ...] = get_args(UploadLabel)
SPLITS: tuple[str, ...] = get_args(MediaSplit)
ORIGINS: tuple[str, ...] = get_args(MediaOrigin)


@dataclass(frozen=True)
class PageInfo:
    number: int
    pages: int
    total: int


def _line(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise HTTPException(status_code=422, detail="line must be a pipeline id") from None


def label_counts(session: Session, project_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(select(MediaCount.label, MediaCount.total).where(MediaCount.project_id == project_id))
    return {label: total for label, total in rows}


def champion_of(session: Session, project_id: uuid.UUID) -> Model | None:
    return session.scalar(select(Model).where(Model.project_id == project_id, Model.champion))


def _dataset_context(session: Session, project: Project, where: MediaFilter, page_number: int) -> dict[str, Any]:
    page_number = max(1, page_number)
    page = media_page(session, project.id, where, PAGE_SIZE, (page_number - 1) * PAGE_SIZE)
    query = {key: value for key, value in (("label", where.label), ("split", where.split), ("origin", where.origin),
                                           ("line", where.pipeline_id)) if value}
    lines = session.execute(select(Pipeline.id, Pipeline.name).where(Pipeline.project_id == project.id)
                            .order_by(Pipeline.name)).all()
    counts = label_counts(session, project.id)
    return {
        "section": "projects", "tab": "dataset", "tabs": PROJECT_TABS, "project": project,
        "labels": LABELS, "upload_labels": UPLOAD_LABELS, "splits": SPLITS, "origins": ORIGINS, "lines": lines,
        "label_counts": counts, "split_counts": split_counts(session, project.id, sum(counts.values())),
        "media": page.rows, "filter": where, "filter_query": urlencode(query),
        "page": PageInfo(page_number, max(1, math.ceil(page.total / PAGE_SIZE)), page.total),
        "page_query": urlencode({**query, "page": page_number}),
        "champion": champion_of(session, project.id), "upload": None, "upload_errors": {}, "bulk_error": None,
    }


@router.get("/ui/projects/{project_id}", response_class=HTMLResponse)
def dataset_page(request: Request, project_id: uuid.UUID, session: SessionDep, label: str | None = None,
                 split: str | None = None, origin: str | None = None, line: str | None = None,
                 page: int = 1, uploaded: int | None = None, changed: int | None = None) -> HTMLResponse:
    project = get_or_404(session, Project, project_id)
    where = MediaFilter(choice(label, LABELS, "label"), choice(split, SPLITS, "split"),
                        choice(origin, ORIGINS, "origin"), _line(line))
    context = _dataset_context(session, project, where, page)
    context.update(uploaded=uploaded, changed=changed)
    return render(request, "dataset.html", context)


@router.post("/ui/projects/{project_id}/upload", response_class=HTMLResponse)
def upload(request: Request, project_id: uuid.UUID, session: SessionDep, store: StoreDep, settings: SettingsDep,
           label: Annotated[str, Form()] = "", files: Annotated[list[UploadFile], File()] = []  # noqa: B006
           ) -> Response:
    """The form without scripts: stores what decodes, then shows what was refused and why."""
    project = get_or_404(session, Project, project_id)
    chosen = [upload for upload in files if upload.filename]  # an empty file input still sends one nameless part
    errors = {}
    if label not in UPLOAD_LABELS:
        errors["label"] = f"Input should be {' or '.join(repr(value) for value in UPLOAD_LABELS)}"
    if not chosen:
        errors["files"] = "choose at least one image file"
    result: UploadResult | None = None
    if not errors:
        try:
            result = upload_images(session, store, project_id, ((item.filename, item.file.read()) for item in chosen),
                                   label, settings.thumbnail_size)
        except HTTPException as error:
            if not isinstance(error.detail, dict):
                raise
            errors["files"] = detail_text(error)
            refused = error.detail.get("errors", [])
            result = UploadResult(uploaded=0, failed=len(refused), items=[], errors=refused)
    if result is not None and not result.errors:
        return see_other(request, f"/ui/projects/{project_id}?uploaded={result.uploaded}")
    context = _dataset_context(session, project, MediaFilter(), 1)
    context.update(upload=result, upload_errors=errors, upload_label=label)
    return render(request, "dataset.html", context, status_code=422 if errors else 200)


@router.post("/ui/projects/{project_id}/media", response_class=HTMLResponse)
def change_selection(request: Request, project_id: uuid.UUID, session: SessionDep,
                     media_ids: Annotated[list[str], Form()] = [],  # noqa: B006
                     label: Annotated[str, Form()] = "", split: Annotated[str, Form()] = "",
                     back: Annotated[str, Form()] = "") -> Response:
    """One decision (label and/or split) for the ticked items: all of them or none."""
    project = get_or_404(session, Project, project_id)
    try:
        ids = [uuid.UUID(value) for value in media_ids]
        count = change_many(session, project_id, ids, choice(label, LABELS, "label"), choice(split, SPLITS, "split"))
    except ValueError:
        error: str | None = "a selected item is not a media id"
    except HTTPException as refused:
        error = detail_text(refused)
    else:
        session.commit()
        kept = kept_query(back, ("label", "split", "origin", "line", "page"))
        return see_other(request, f"/ui/projects/{project_id}?{kept + '&' if kept else ''}changed={count}")
    session.rollback()
    context = _dataset_context(session, project, MediaFilter(), 1)
    context.update(bulk_error=error)
    return render(request, "dataset.html", context, status_code=422)


def _preview(request: Request, session: Session, media: Media, status_code: int = 200, **context: Any
             ) -> HTMLResponse:
    project = get_or_404(session, Project, media.project_id)
    line = session.get(Pipeline, media.pipeline_id) if media.pipeline_id else None
    values = {"section": "projects", "project": project, "media": media, "line": line,
              "champion": champion_of(session, project.id), "opacity": 50, "labels": LABELS, "splits": SPLITS,
              "errors": {}, "changed": False, **context}
    return render(request, "media.html", values, status_code=status_code)


@router.get("/ui/media/{media_id}", response_class=HTMLResponse)
def preview(request: Request, media_id: uuid.UUID, session: SessionDep, opacity: int = 50,
            changed: bool = False) -> HTMLResponse:
    return _preview(request, session, get_or_404(session, Media, media_id), opacity=min(100, max(0, opacity)),
                    changed=changed)


@router.post("/ui/media/{media_id}", response_class=HTMLResponse)
def change_one(request: Request, media_id: uuid.UUID, session: SessionDep, label: Annotated[str, Form()] = "",
               split: Annotated[str, Form()] = "") -> Response:
    """The same decision as PATCH /api/media/{id}, from a form (empty means: keep)."""
    media = get_or_404(session, Media, media_id)
    try:
        body = MediaPatch.model_validate({"label": label or None, "split": split or None})
        change_media(media, body.label, body.split)
    except ValidationError as error:
        return _preview(request, session, media, 422, errors=field_errors(error))
    except HTTPException as refused:
        session.rollback()
        return _preview(request, session, media, refused.status_code, errors={"split": detail_text(refused)})
    session.commit()
    return see_other(request, f"/ui/media/{media_id}?changed=1")
