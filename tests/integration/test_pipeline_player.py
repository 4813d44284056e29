"""The player page plays a live pipeline in headless Chromium (skipped without Chromium; a failure in CI).

The REST API will serve the page and proxy ``/api/webrtc/*`` to the pipeline's control endpoint;
here a small loopback server plays that part, so the page, the signalling and the runtime's
WebRTC track are exercised by a real browser.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from pipelines.control import ControlServer
from tests.browser import HeadlessChromium
from tests.integration.pipeline_helpers import video_runtime

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("chromium_installed"),
]

PLAYER = Path(__file__).resolve().parents[2] / "pipelines" / "static" / "player.html"
# The page imports the console's WebRTC module from ../ui/static/ (beside /api/ on the real server).
WEBRTC_MODULE = Path(__file__).resolve().parents[2] / "api" / "console" / "static" / "webrtc.js"


class ApiStandIn:
    """Serves the page at /player.html (its module at /ui/static/webrtc.js) and forwards /api/webrtc/* to the
    control endpoint with its token."""

    def __init__(self, control: ControlServer) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                module = self.path == "/ui/static/webrtc.js"
                body = WEBRTC_MODULE.read_bytes() if module else PLAYER.read_bytes()
                self.send_response(200 if module or self.path.startswith("/player.html") else 404)
                self.send_header("Content-Type", "text/javascript" if module else "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                payload.pop("pipeline_id", None)  # the API resolves it to the control endpoint
                upstream = httpx.post(
                    f"{control.url}{self.path.removeprefix('/api')}",
                    json=payload,
                    headers={"Authorization": f"Bearer {control.token}"},
                    timeout=30,
                )
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_pipeline(model_dir: Path, part_video: Path) -> Iterator[ControlServer]:
    runtime = video_runtime(model_dir, part_video)
    runtime.start()
    control = ControlServer(runtime)
    control.start()
    yield control
    control.stop()
    runtime.stop()


def test_the_player_page_plays_the_stream(live_pipeline: ControlServer) -> None:
    api = ApiStandIn(live_pipeline)
    # Real host candidates instead of mDNS names, which the server side cannot resolve here.
    browser = HeadlessChromium(f"{api.url}/player.html?pipeline_id=run-1&api=/api",
                               ["--disable-features=WebRtcHideLocalIpsWithMdns"])
    try:
        deadline = time.monotonic() + 45
        state = frames = width = None
        while time.monotonic() < deadline:
            state = browser.evaluate("document.body.dataset.state")
            frames = int(browser.evaluate("document.getElementById('frames').textContent") or 0)
            width = browser.evaluate("document.getElementById('video').videoWidth")
            if state == "failed" or (state == "playing" and frames >= 5 and width):
                break
            time.sleep(0.3)
        assert state == "playing", browser.evaluate("document.getElementById('status').textContent")
        assert frames >= 5 and width == 320
    finally:
        browser.close()
        api.close()
