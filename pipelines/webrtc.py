"""WebRTC live view (aiortc): each viewer gets a video track fed from the pipeline's newest frame.

Viewers never hold the pipeline up: a track only looks at :class:`LatestFrame` and sends the
newest frame when it has changed, so a viewer whose network or encoder stalls simply skips
frames. Signalling is plain offer/answer; the answer is returned once this side's ICE
candidates are gathered (so trickle is optional), and remote candidates sent later through
:meth:`WebRtcHub.add_candidate` are applied to the matching viewer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from fractions import Fraction

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from pipelines.frames import LatestFrame

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90000)


class SignallingError(ValueError):
    """A malformed offer or candidate (HTTP 400)."""


class UnknownViewer(LookupError):  # noqa: N818
    """A candidate for a viewer session that does not exist (HTTP 404)."""


class ViewerLimitReached(RuntimeError):  # noqa: N818
    """Too many viewers on this pipeline already (HTTP 409)."""


class AnnotatedFrameTrack(VideoStreamTrack):
    """Sends each new annotated frame once; repeats the last one after ``keepalive_s`` of silence."""

    def __init__(self, latest: LatestFrame, max_fps: float = 30.0, keepalive_s: float = 1.0) -> None:
        super().__init__()
        self._latest = latest
        self._min_interval = 1.0 / max_fps
        self._keepalive_s = keepalive_s
        self._start = time.monotonic()
        self._sent_version = 0
        self._sent_at = 0.0

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            now = time.monotonic()
            frame, version = self._latest.get()
            fresh = version != self._sent_version and now - self._sent_at >= self._min_interval
            if frame is not None and (fresh or now - self._sent_at >= self._keepalive_s):
                break
            await asyncio.sleep(min(0.01, self._min_interval / 2))
        self._sent_version, self._sent_at = version, now
        # Drawing the overlay (done once per frame, shared with other viewers) stays off the event loop.
        image = await asyncio.get_running_loop().run_in_executor(None, lambda: frame.image)
        height, width = image.shape[:2]
        image = image[: height - height % 2, : width - width % 2]  # 4:2:0 video needs even sizes
        video = av.VideoFrame.from_ndarray(image, format="bgr24")
        video.pts = int((now - self._start) * 90000)
        video.time_base = VIDEO_TIME_BASE
        return video


class WebRtcHub:
    """The viewers of one pipeline. All methods run on the control server's event loop."""

    def __init__(
        self,
        latest: LatestFrame,
        max_viewers: int = 8,
        ice_servers: list[RTCIceServer] | None = None,
        connect_timeout_s: float = 60.0,
    ) -> None:
        self._latest = latest
        self.max_viewers = max_viewers
        # No default STUN server: the default (a public one) is unreachable on an isolated line.
        self._ice_servers = ice_servers or []
        self._connect_timeout_s = connect_timeout_s
        self._peers: dict[str, RTCPeerConnection] = {}

    @property
    def viewers(self) -> int:
        return len(self._peers)

    async def answer(self, sdp: str, sdp_type: str = "offer") -> tuple[str, RTCSessionDescription]:
        """Accept a viewer's offer: returns (session id, answer)."""
        if sdp_type != "offer" or not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise SignallingError("expected an SDP offer")
        if "m=video" not in sdp:
            raise SignallingError("the offer has no video section")
        if len(self._peers) >= self.max_viewers:
            raise ViewerLimitReached(f"this pipeline already has {self.max_viewers} viewers")
        session_id = uuid.uuid4().hex
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        self._peers[session_id] = pc

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("viewer %s: %s", session_id[:8], pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self._drop(session_id)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            pc.addTrack(AnnotatedFrameTrack(self._latest))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as error:
            await self._drop(session_id)
            raise SignallingError(f"cannot answer the offer: {error}") from error
        asyncio.get_running_loop().call_later(self._connect_timeout_s, self._reap_if_unconnected, session_id)
        return session_id, pc.localDescription

    def _reap_if_unconnected(self, session_id: str) -> None:
        pc = self._peers.get(session_id)
        if pc is not None and pc.connectionState not in ("connected",):
            log.info("viewer %s never connected; closing", session_id[:8])
            asyncio.ensure_future(self._drop(session_id))

    async def add_candidate(
        self,
        candidate: str,
        sdp_mid: str | None = None,
        sdp_mline_index: int | None = None,
        session_id: str | None = None,
    ) -> None:
        """Apply a remote ICE candidate to ``session_id`` (without one: to the newest unconnected viewer)."""
        pc = self._find(session_id)
        text = candidate.strip()
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        if not text:  # end-of-candidates
            return
        try:
            ice = candidate_from_sdp(text)
        except (AssertionError, ValueError, IndexError) as error:
            raise SignallingError("malformed ICE candidate") from error
        ice.sdpMid = sdp_mid
        ice.sdpMLineIndex = sdp_mline_index if sdp_mline_index is not None else (0 if sdp_mid is None else None)
        await pc.addIceCandidate(ice)

    def _find(self, session_id: str | None) -> RTCPeerConnection:
        if session_id is not None:
            if session_id not in self._peers:
                raise UnknownViewer(f"no viewer session {session_id}")
            return self._peers[session_id]
        pending = [pc for pc in self._peers.values() if pc.connectionState in ("new", "connecting")]
        if not pending:
            raise UnknownViewer("no viewer is waiting for candidates; send session_id from the answer")
        return pending[-1]

    async def _drop(self, session_id: str) -> None:
        pc = self._peers.pop(session_id, None)
        if pc is not None:
            await pc.close()

    async def close(self) -> None:
        await asyncio.gather(*(self._drop(session_id) for session_id in list(self._peers)))
