"""The API's client for a running pipeline's control endpoint (captures, WebRTC signalling).

The endpoint lives in the pipeline's flow process, possibly on another machine; its URL and
bearer token are on the active pipeline row. Its answers pass through with their status code
(`{"detail": ...}` errors); an endpoint that cannot be reached raises ControlUnreachable.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

# A WebRTC offer is answered once ICE gathering is done (a few seconds at most on loopback).
TIMEOUT = httpx.Timeout(20.0, connect=3.0)


class ControlError(RuntimeError):
    """The control endpoint answered with an error (status code and detail as it sent them)."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class ControlUnreachable(RuntimeError):
    """No answer from the control endpoint (the pipeline process is gone or the network is down)."""


@dataclass(frozen=True)
class CapturedFrame:
    png: bytes  # the annotated frame (heat map, label, score)
    raw_png: bytes | None  # the frame as the camera saw it, when the runtime sends it
    anomaly_score: float
    label: str
    timestamp: datetime
    frame_index: int


class ControlClient:
    def __init__(self, url: str, token: str, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout

    def capture(self) -> CapturedFrame:
        body = self._post("/capture", {})
        try:
            return CapturedFrame(
                png=base64.b64decode(body["image_png_base64"], validate=True),
                raw_png=base64.b64decode(body["raw_png_base64"], validate=True) if body.get("raw_png_base64") else None,
                anomaly_score=float(body["anomaly_score"]),
                label=str(body["label"]),
                timestamp=datetime.fromisoformat(str(body["timestamp"]).replace("Z", "+00:00")),
                frame_index=int(body["frame_index"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as error:
            raise ControlError(502, f"the pipeline sent a malformed capture: {error}") from error

    def offer(self, sdp: str, sdp_type: str) -> dict[str, Any]:
        return self._post("/webrtc/offer", {"sdp": sdp, "type": sdp_type})

    def candidate(self, candidate: dict[str, Any]) -> dict[str, Any]:
        return self._post("/webrtc/candidate", candidate)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = httpx.post(f"{self.url}{path}", json=body, headers=self._headers, timeout=self._timeout)
        except httpx.HTTPError as error:
            raise ControlUnreachable(f"the pipeline's control endpoint {self.url} is unreachable: {error}") from error
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code == 401:
            # The stored token does not match: a configuration fault, not the client's.
            raise ControlError(502, "the pipeline's control endpoint refused the stored token")
        if response.status_code >= 400:
            detail = payload.get("detail") if isinstance(payload, dict) else None
            raise ControlError(response.status_code if response.status_code < 500 else 502,
                               detail or f"the pipeline answered {response.status_code}")
        if not isinstance(payload, dict):
            raise ControlError(502, "the pipeline's control endpoint sent no JSON object")
        return payload
