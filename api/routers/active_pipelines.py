"""Active pipelines: live flow runs of the `inference` deployment, their captures and their player page.

The API keeps no state of its own here: the row (written by the running flow every second) and
the flow run in Prefect are the truth, so active pipelines survive an API restart. Reads settle
rows whose run ended without recording it (crashed, killed, cancelled before it started).
"""

from __future__ import annotations

import logging
import uuid
from importlib import resources
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from api.deps import DecoderDep, SessionDep, StoreDep, get_or_404
from api.routing import API_PREFIX
from api.schemas.active_pipelines import (
    ActivePipelineCreate,
    ActivePipelineOut,
    ActivePipelineStarted,
    ActiveStatus,
    CaptureOut,
)
from api.schemas.common import ErrorResponse
from api.schemas.media import UploadLabel
from api.services.active_runs import refresh, silence_note, start_line, stop_line
from api.services.captures import take_capture
from api.services.jobs import OrchestratorDep
from infra.active_pipelines import ACTIVE
from infra.database.models import ActivePipeline, Capture
from infra.storage import blob_key

log = logging.getLogger(__name__)

router = APIRouter(prefix=API_PREFIX, tags=["active-pipelines"])

# The browser page that plays an active pipeline's WebRTC stream through this API's signalling routes.
# It ships as a static file of the runtime package; only the file is read, no runtime code is run.
PLAYER_PAGE = ("pipelines", "static/player.html")


def _out(row: ActivePipeline) -> ActivePipelineOut:
    """The row as the API shows it; a running pipeline that stopped heart-beating says so."""
    out = ActivePipelineOut.model_validate(row)
    out.message = out.message or silence_note(row)
    return out


@router.post("/active-pipelines", status_code=201, response_model=ActivePipelineStarted,
             responses={404: {"model": ErrorResponse, "description": "No pipeline has this id"}})
def start_pipeline(body: ActivePipelineCreate, session: SessionDep, orchestrator: OrchestratorDep) -> ActivePipeline:
    """Submit a run of the `inference` deployment; the row turns running once the pipeline serves frames."""
    return start_line(session, orchestrator, body.pipeline_id)


@router.get("/active-pipelines", response_model=list[ActivePipelineOut])
def list_active_pipelines(
    session: SessionDep,
    orchestrator: OrchestratorDep,
    pipeline_id: uuid.UUID | None = None,
    status: ActiveStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ActivePipelineOut]:
    """Newest first, finished ones included (with how they ended)."""
    query = select(ActivePipeline).order_by(ActivePipeline.created_at.desc(), ActivePipeline.id.desc())
    if pipeline_id is not None:
        query = query.where(ActivePipeline.pipeline_id == pipeline_id)
    # Settle the (few) still-active rows first, so that the status filter sees how they really are.
    refresh(session, orchestrator, list(session.scalars(query.where(ActivePipeline.status.in_(ACTIVE)))))
    if status is not None:
        query = query.where(ActivePipeline.status == status)
    return [_out(row) for row in session.scalars(query.limit(limit))]


@router.get("/active-pipelines/{active_id}", response_model=ActivePipelineOut)
def get_active_pipeline(active_id: uuid.UUID, session: SessionDep, orchestrator: OrchestratorDep) -> ActivePipelineOut:
    row = get_or_404(session, ActivePipeline, active_id)
    refresh(session, orchestrator, [row])
    return _out(row)


@router.delete("/active-pipelines/{active_id}", status_code=204)
def stop_pipeline(active_id: uuid.UUID, session: SessionDep, orchestrator: OrchestratorDep) -> Response:
    """Cancel the flow run: the pipeline flushes its sinks and ends `stopped` within seconds."""
    stop_line(session, orchestrator, active_id)
    return Response(status_code=204)


@router.post("/active-pipelines/{active_id}/capture", status_code=201, response_model=CaptureOut,
             responses={502: {"model": ErrorResponse, "description": "The pipeline sent an unusable frame or error"}})
def capture_frame(
    active_id: uuid.UUID,
    session: SessionDep,
    store: StoreDep,
    decoder: DecoderDep,
    orchestrator: OrchestratorDep,
    add_to_dataset: bool = False,
    label: UploadLabel | None = None,
) -> CaptureOut:
    """Store the newest annotated frame; with add_to_dataset, the raw frame also becomes project media.

    The media label is `label`, or the pipeline's own verdict when none is given.
    """
    return take_capture(session, store, decoder, orchestrator, active_id, add_to_dataset, label)


@router.get("/captures/{capture_id}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "The captured annotated frame"}})
def get_capture_image(capture_id: uuid.UUID, session: SessionDep, store: StoreDep) -> Response:
    capture = get_or_404(session, Capture, capture_id)
    try:
        data = store.get(blob_key(capture.sha256))
    except FileNotFoundError as error:
        raise HTTPException(status_code=404, detail="capture image is missing from storage") from error
    return Response(content=data, media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})


def player_html() -> str:
    package, path = PLAYER_PAGE
    return resources.files(package).joinpath(path).read_text(encoding="utf-8")


@router.get("/player", response_class=HTMLResponse)
def player_page() -> HTMLResponse:
    """A minimal page that plays an active pipeline's live stream: /api/player?pipeline_id=<active id>.

    With INSPECT_API_KEY set, a request without the key gets this same page with status 401: it asks
    for the key and sends it on its signalling requests.
    """
    return HTMLResponse(player_html(), headers={"Cache-Control": "no-cache"})


@router.get("/active-pipelines/{active_id}/view", response_class=RedirectResponse, status_code=307)
def view_pipeline(active_id: uuid.UUID, session: SessionDep) -> RedirectResponse:
    """The player page for this active pipeline."""
    get_or_404(session, ActivePipeline, active_id)
    return RedirectResponse(f"/api/player?{urlencode({'pipeline_id': str(active_id)})}", status_code=307)
