"""The review queue (/ui/projects/{id}/review): unlabelled items one at a time, judged normal or anomalous.

The page shows the item at `position` (newest first) and works as plain forms and links; review.js
takes over with the keyboard (n, a, s, arrows), stores each verdict at once with PATCH /api/media/{id}
and shows the next item without loading a page.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from api.console.dataset import champion_of, label_counts
from api.console.forms import require_same_origin, see_other
from api.console.navigation import PROJECT_TABS
from api.console.templating import render
from api.deps import SessionDep, get_or_404
from api.services.media import MediaFilter, change_media, media_page
from infra.database.models import Media, Project

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

UNLABELLED = "unlabelled"
VERDICTS = ("normal", "anomalous")


@router.get("/ui/projects/{project_id}/review", response_class=HTMLResponse)
def review_page(request: Request, project_id: uuid.UUID, session: SessionDep, position: int = 0) -> HTMLResponse:
    project = get_or_404(session, Project, project_id)
    total = label_counts(session, project_id).get(UNLABELLED, 0)
    position = min(max(0, position), max(0, total - 1))
    page = media_page(session, project_id, MediaFilter(label=UNLABELLED), 1, position)
    return render(request, "review.html", {
        "section": "projects", "tab": "review", "tabs": PROJECT_TABS, "project": project,
        "item": page.rows[0] if page.rows else None, "position": position, "total": page.total,
        "champion": champion_of(session, project_id), "verdicts": VERDICTS,
    })


@router.post("/ui/projects/{project_id}/review")
def judge(request: Request, project_id: uuid.UUID, session: SessionDep, media_id: Annotated[str, Form()] = "",
          verdict: Annotated[str, Form()] = "", position: Annotated[int, Form()] = 0) -> Response:
    """A verdict without scripts: the item leaves the queue and the next one takes its position."""
    if verdict not in VERDICTS:
        raise HTTPException(status_code=422, detail=f"verdict must be one of {', '.join(VERDICTS)}")
    try:
        media = get_or_404(session, Media, uuid.UUID(media_id))
    except ValueError:
        raise HTTPException(status_code=422, detail="media_id must be a media id") from None
    if media.project_id != project_id:
        raise HTTPException(status_code=404, detail=f"media {media_id} is not in this project")
    change_media(media, verdict, None)
    session.commit()
    return see_other(request, f"/ui/projects/{project_id}/review?position={max(0, position)}")
