"""WebRTC signalling for the live view of an active pipeline (proxied to its control endpoint)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class WebRtcOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: uuid.UUID = Field(description="The active pipeline to watch")
    sdp: str = Field(min_length=1, max_length=128 * 1024)
    type: Literal["offer"] = "offer"


class WebRtcAnswer(BaseModel):
    sdp: str
    type: Literal["answer"]
    # Send it with later ICE candidates so they reach this viewer (optional with one viewer connecting).
    session_id: str | None = None


class WebRtcCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    pipeline_id: uuid.UUID
    candidate: str = Field(max_length=4096)
    sdpMid: str | None = Field(default=None, max_length=256)  # the WebRTC field names
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=1024)
    usernameFragment: str | None = Field(default=None, max_length=256)  # sent by browsers; not needed here
    session_id: str | None = Field(default=None, max_length=64)
