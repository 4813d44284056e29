"""The player page sends the API key to its own origin only (real Chromium through Playwright).

A crafted link (``/api/player?pipeline_id=x&api=<elsewhere>``) must not make the page send the
stored key, or anything at all, to another address: a second loopback server plays "elsewhere"
and counts every connection it gets, TLS attempts included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.browser import chromium_available, playwright_chromium
from tests.integration.recording_server import Answer, Recorded, RecordingServer

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not chromium_available(), reason="headless Chromium is not installed"),
]

PLAYER = Path(__file__).resolve().parents[2] / "pipelines" / "static" / "player.html"
WEBRTC_MODULE = Path(__file__).resolve().parents[2] / "api" / "console" / "static" / "webrtc.js"
KEY_ITEM = "geti-inspect-api-key"


# Permissive CORS: were the page to call another origin, the call itself would go through and be seen.
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}


def stand_in_api(request: Recorded) -> Answer:
    """The player page at /api/player; every POST wants a key (401), as the API with a key set does."""
    if request.method == "GET" and request.path.startswith("/api/player"):
        return Answer(200, PLAYER.read_bytes(), {"Content-Type": "text/html; charset=utf-8", **CORS})
    if request.method == "GET" and request.path == "/ui/static/webrtc.js":  # the page's WebRTC module
        return Answer(200, WEBRTC_MODULE.read_bytes(), {"Content-Type": "text/javascript", **CORS})
    if request.method == "POST":
        return Answer(401, json.dumps({"detail": "key"}).encode(), {"Content-Type": "application/json", **CORS})
    return Answer(204 if request.method == "OPTIONS" else 404, b"", CORS)


@pytest.fixture
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    page_server, elsewhere = RecordingServer(stand_in_api, "127.0.0.1"), RecordingServer(stand_in_api, "127.0.0.2")
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
        offers = [request for request in page_server.requests if (request.method, request.path) == (
            "POST", "/api/webrtc/offer")]
        assert offers and offers[0].headers.get("Authorization") == "Bearer stored-key"
    assert elsewhere.connections == 0
