"""WebRTC signalling for the live view, proxied to the active pipeline's control endpoint.

Media flows directly between the browser and the pipeline process; the API only relays the
offer/answer and ICE candidates, so it never carries video.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import SessionDep
from api.routing import API_PREFIX
from api.schemas.common import ErrorResponse
from api.schemas.webrtc import WebRtcAnswer, WebRtcCandidate, WebRtcOffer
from api.services.active_runs import control_call, running_row
from api.services.jobs import OrchestratorDep

# The active pipeline named in the body may not exist (404); the pipeline may answer nonsense (502).
router = APIRouter(prefix=API_PREFIX, tags=["webrtc"], responses={
    404: {"model": ErrorResponse, "description": "No active pipeline has this id"},
    502: {"model": ErrorResponse, "description": "The pipeline's control endpoint answered with an error"},
})


@router.post("/webrtc/offer", response_model=WebRtcAnswer)
def offer(body: WebRtcOffer, session: SessionDep, orchestrator: OrchestratorDep) -> dict[str, Any]:
    """Answer a viewer's SDP offer; the answer carries the pipeline's ICE candidates already."""
    row = running_row(session, body.pipeline_id)
    with control_call(session, orchestrator, row) as control:
        return control.offer(body.sdp, body.type)


@router.post("/webrtc/candidate")
def candidate(body: WebRtcCandidate, session: SessionDep, orchestrator: OrchestratorDep) -> dict[str, Any]:
    """Relay one ICE candidate of the viewer (trickle ICE; optional, the offer may hold them all)."""
    row = running_row(session, body.pipeline_id)
    relayed = body.model_dump(exclude={"pipeline_id", "usernameFragment"}, exclude_none=True)
    with control_call(session, orchestrator, row) as control:
        control.candidate(relayed)
    return {}
