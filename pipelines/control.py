"""The small authenticated HTTP endpoint a running pipeline serves; the API proxies to it.

Routes (all need ``Authorization: Bearer <token>``; errors are ``{"detail": ...}``):

- ``GET  /status``            → the runtime's status (state, message, metrics, source, sinks)
- ``POST /capture``           → ``{timestamp, anomaly_score, label, frame_index, image_png_base64,
  raw_png_base64}`` (annotated and raw frame);
  409 before the first frame
- ``POST /webrtc/offer``      ``{sdp, type?}`` → ``{sdp, type: "answer", session_id}``; 409 at the viewer limit
- ``POST /webrtc/candidate``  ``{candidate, sdpMid?, sdpMLineIndex?, session_id?}`` → ``{}``

The server runs aiohttp (already required by aiortc) on its own thread and event loop, which
also hosts the WebRTC peer connections, so nothing here competes with the inference thread for
a lock. It binds 127.0.0.1 by default; a worker on another machine binds an interface the API
can reach and advertises that address. The port is a free one of ``INSPECT_PIPELINE_CONTROL_PORTS``
(picked at random, so lines starting together rarely try the same one): a known range is what lets
sinks and cameras be refused the control endpoints (infra/configs/outbound.py).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import random
import secrets
import threading
from typing import Any

from aiohttp import web

from pipelines.events import iso_utc
from pipelines.runtime import NoFrameYet, PipelineRuntime
from pipelines.webrtc import SignallingError, UnknownViewer, ViewerLimitReached, WebRtcHub

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # an SDP offer is a few kB


def _error(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


class ControlServer:
    def __init__(
        self,
        runtime: PipelineRuntime,
        *,
        host: str = "127.0.0.1",
        port: int | range = 0,
        token: str | None = None,
        advertise_host: str | None = None,
        max_viewers: int = 8,
    ) -> None:
        self.runtime = runtime
        self.host = host
        self._ports = port if isinstance(port, range) else range(port, port + 1)
        self.port = self._ports[0]
        self.token = token or secrets.token_urlsafe(32)
        self.advertise_host = advertise_host or host
        self.max_viewers = max_viewers
        self.hub: WebRtcHub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.advertise_host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        """Serve on a background thread; returns the base URL once the socket listens."""
        self._thread = threading.Thread(target=self._serve, name="pipeline-control", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("control server did not start in time")
        if self._start_error is not None:
            raise RuntimeError(f"control server failed to start: {self._start_error}") from self._start_error
        log.info("control endpoint at %s", self.url)
        return self.url

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as error:  # report bind errors to start()
            self._start_error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _startup(self) -> None:
        self.hub = WebRtcHub(self.runtime.latest, max_viewers=self.max_viewers)
        app = web.Application(middlewares=[self._auth], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/status", self._status)
        app.router.add_post("/capture", self._capture)
        app.router.add_post("/webrtc/offer", self._offer)
        app.router.add_post("/webrtc/candidate", self._candidate)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        last_error: OSError | None = None
        for port in random.sample(self._ports, len(self._ports)):
            try:
                await web.TCPSite(self._runner, self.host, port).start()
                break
            except OSError as error:  # taken (another line, another program): try the next one
                last_error = error
        else:
            raise OSError(f"no free control port in {self._ports.start}-{self._ports.stop - 1} "
                          f"(INSPECT_PIPELINE_CONTROL_PORTS): {last_error}")
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        if self.hub is not None:
            await self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    # ---------------------------------------------------------------- handlers

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self.token.encode()):
            return _error(401, "missing or invalid bearer token")
        try:
            return await handler(request)
        except web.HTTPException as error:
            return _error(error.status, error.reason)

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(reason="the body must be JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(reason="the body must be a JSON object")
        return body

    async def _status(self, request: web.Request) -> web.Response:
        status = self.runtime.status()
        status["viewers"] = self.hub.viewers if self.hub else 0
        return web.json_response(status)

    async def _capture(self, request: web.Request) -> web.Response:
        try:
            capture = await asyncio.get_running_loop().run_in_executor(None, self.runtime.capture)
        except NoFrameYet as error:
            return _error(409, str(error))
        return web.json_response(
            {
                "timestamp": iso_utc(capture.timestamp),
                "anomaly_score": capture.anomaly_score,
                "label": "anomalous" if capture.is_anomalous else "normal",
                "frame_index": capture.frame_index,
                "image_png_base64": base64.b64encode(capture.png).decode("ascii"),
                "raw_png_base64": base64.b64encode(capture.raw_png).decode("ascii"),
            }
        )

    async def _offer(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        assert self.hub is not None
        try:
            session_id, answer = await self.hub.answer(body.get("sdp"), body.get("type", "offer"))
        except SignallingError as error:
            return _error(400, str(error))
        except ViewerLimitReached as error:
            return _error(409, str(error))
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "session_id": session_id})

    async def _candidate(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        candidate = body.get("candidate")
        if isinstance(candidate, dict):  # a browser's RTCIceCandidateInit passed through as is
            body = {**body, **candidate}
            candidate = candidate.get("candidate")
        if not isinstance(candidate, str):
            return _error(400, "candidate must be a string")
        mline = body.get("sdpMLineIndex")
        if mline is not None and not isinstance(mline, int):
            return _error(400, "sdpMLineIndex must be an integer")
        assert self.hub is not None
        try:
            await self.hub.add_candidate(candidate, body.get("sdpMid"), mline, body.get("session_id"))
        except SignallingError as error:
            return _error(400, str(error))
        except UnknownViewer as error:
            return _error(404, str(error))
        return web.json_response({})
