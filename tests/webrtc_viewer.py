"""A receive-only aiortc viewer: offers, gets the answer through a signalling callable, collects frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCSessionDescription

Signal = Callable[[dict[str, Any]], dict[str, Any]]


def local_candidates(sdp: str) -> list[dict[str, Any]]:
    """The host candidates of an SDP as trickle-ICE messages (``candidate``, ``sdpMid``, ``sdpMLineIndex``)."""
    mid = None
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:")
        elif line.startswith("a=candidate:"):
            found.append({"candidate": line.removeprefix("a="), "sdpMid": mid, "sdpMLineIndex": 0})
    return found


async def _watch(offer: Signal, candidate: Signal | None, count: int, timeout: float) -> list[av.VideoFrame]:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    frames: list[av.VideoFrame] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def pump() -> None:
            try:
                while len(frames) < count:
                    frames.append(await track.recv())
                done.set_result(None)
            except Exception as error:  # noqa: BLE001 - surfaced through the future
                if not done.done():
                    done.set_exception(error)

        asyncio.ensure_future(pump())

    try:
        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers its candidates here
        local = pc.localDescription
        answer = await asyncio.to_thread(offer, {"sdp": local.sdp, "type": local.type})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        if candidate is not None:  # trickle the (already offered) candidates too: the relay must accept them
            for message in local_candidates(local.sdp):
                await asyncio.to_thread(candidate, {**message, "session_id": answer.get("session_id")})
        await asyncio.wait_for(done, timeout)
    finally:
        await pc.close()
    return frames


def watch(offer: Signal, count: int = 3, timeout: float = 30.0, candidate: Signal | None = None) -> list[av.VideoFrame]:
    """Connect, receive `count` decoded video frames (or time out), disconnect."""
    return asyncio.run(_watch(offer, candidate, count, timeout))
