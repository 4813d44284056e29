"""The player page sends the API key to its own origin only (real Chromium through Playwright).

A crafted link (``/api/player?pipeline_id=x&api=<elsewhere>``) must not make the page send the
stored key, or anything at all, to another address: a second loopback server plays "elsewhere"
and counts every connection it gets, TLS attempts included.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.browser import chromium_available, playwright_chromium

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not chromium_available(), reason="headless Chromium is not installed"),
]

PLAYER = Path(__file__).resolve().parents[2] / "pipelines" / "static" / "player.html"
KEY_ITEM = "geti-inspect-api-key"


class RecordingServer:
    """A loopback HTTP server that records every connection and request; serves the player at /api/player."""

    def __init__(self, host: str) -> None:
        self.connections = 0
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                recorder.requests.append((self.command, self.path, self.headers.get("Authorization")))
                self.send_response(status)
                # Permissive CORS: were the page to call here, the call itself would go through and be seen.
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Headers", "*")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/api/player"):
                    self._answer(200, PLAYER.read_bytes(), "text/html; charset=utf-8")
                else:
                    self._answer(404, b"{}", "application/json")

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(401, json.dumps({"detail": "key"}).encode(), "application/json")

            def do_OPTIONS(self) -> None:  # noqa: N802
                self._answer(204, b"", "text/plain")

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def verify_request(self, request, client_address) -> bool:  # noqa: ANN001 - socketserver's signature
                recorder.connections += 1
                return True

        self.server = Server((host, 0), Handler)
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        self.netloc = f"{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    page_server, elsewhere = RecordingServer("127.0.0.1"), RecordingServer("127.0.0.2")
    yield page_server, elsewhere
    page_server.close()
    elsewhere.close()


def crafted_links(elsewhere: RecordingServer, page_netloc: str) -> list[str]:
    return [
        f"{elsewhere.origin}/api",
        f"https://{elsewhere.netloc}/api",
        f"//{elsewhere.netloc}/api",
        f"/\\{elsewhere.netloc}/api",
        f"\\\\{elsewhere.netloc}/api",
        f"http://{page_netloc}@{elsewhere.netloc}/api",
        f" //{elsewhere.netloc}/api",
    ]


def test_a_crafted_api_address_gets_nothing_and_the_own_origin_gets_the_key(servers) -> None:
    page_server, elsewhere = servers
    dialogs: list[str] = []
    with playwright_chromium() as browser:
        page = browser.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept("typed-key")))
        # The tab already holds the key, as after a first legitimate visit (without a pipeline the page
        # stops at once, so this visit sends nothing that could prompt).
        page.goto(f"{page_server.origin}/api/player")
        page.evaluate(f"sessionStorage.setItem('{KEY_ITEM}', 'stored-key')")
        # The harness sees a call to elsewhere when one is made (so a silent pass is impossible).
        assert page.evaluate(f"fetch('{elsewhere.origin}/probe').then(r => r.status)") == 404
        assert elsewhere.connections >= 1
        elsewhere.connections, elsewhere.requests[:] = 0, []
        for crafted in crafted_links(elsewhere, page_server.netloc):
            page.goto(f"{page_server.origin}/api/player?pipeline_id=run-1&api={quote(crafted, safe='')}")
            page.wait_for_function("document.body.dataset.state === 'failed'", timeout=15_000)
            assert elsewhere.connections == 0 and elsewhere.requests == [], (crafted, elsewhere.requests)
            assert "path on this server" in page.inner_text("#status"), crafted
        assert dialogs == []  # no prompt either: the page stopped before any request
        # A same-origin path is used, with the stored key.
        page_server.requests.clear()
        page.goto(f"{page_server.origin}/api/player?pipeline_id=run-1&api=/api")
        page.wait_for_function("document.body.dataset.state === 'failed'", timeout=15_000)
        offers = [request for request in page_server.requests if request[:2] == ("POST", "/api/webrtc/offer")]
        assert offers and offers[0][2] == "Bearer stored-key"
    assert elsewhere.connections == 0
