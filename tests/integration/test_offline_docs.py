"""The API docs work on a network without internet: every asset is served by the API itself."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.browser import OFFLINE_ARGS, HeadlessChromium
from tests.integration.api_server import ServerProcess

EXTERNAL_URL = re.compile(r"""(?:src|href|url)\s*[=:(]\s*["']?(?:https?:)?//""", re.IGNORECASE)
ASSET_URL = re.compile(r"""(?:src|href)="([^"]+)\"""")


@pytest.mark.parametrize("page", ["/api/docs", "/api/redoc"])
def test_docs_pages_refer_only_to_assets_the_api_serves(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert not EXTERNAL_URL.search(html), EXTERNAL_URL.search(html)
    assert "/api/openapi.json" in html
    assets = ASSET_URL.findall(html)
    assert any(asset.endswith(".js") for asset in assets) and any(asset.endswith(".png") for asset in assets)
    for asset in assets:
        assert asset.startswith("/api/docs-assets/"), asset
        fetched = client.get(asset)
        assert fetched.status_code == 200 and len(fetched.content) > 100, asset


def test_docs_assets_reject_paths_outside_their_folder(client: TestClient) -> None:
    assert client.get("/api/docs-assets/../../app.py").status_code == 404
    assert client.get("/api/docs-assets/%2e%2e/%2e%2e/app.py").status_code == 404


@pytest.fixture(scope="module")
def api_url(isolated_server: ServerProcess) -> str:
    return isolated_server.base_url


def _wait_in_page(browser: HeadlessChromium, expression: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.3)
    return value


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("chromium_installed")
@pytest.mark.parametrize(("page", "operations"), [
    ("/api/docs", "[...document.querySelectorAll('.opblock-summary-path')].map(e => e.textContent)"),
    ("/api/redoc", "[...document.querySelectorAll('[data-section-id^=\"operation\"]')].map(e => e.textContent)"),
])
def test_docs_render_with_the_network_cut_off(api_url: str, page: str, operations: str) -> None:
    paths = httpx.get(f"{api_url}/api/openapi.json").json()["paths"]
    browser = HeadlessChromium(f"{api_url}{page}", OFFLINE_ARGS)
    try:
        # The cut is real: a CDN the stock pages would load from cannot be reached.
        reached = browser.evaluate("fetch('https://cdn.jsdelivr.net/npm/redoc@2/package.json')"
                                   ".then(() => 'reached', () => 'blocked')", await_promise=True)
        assert reached == "blocked"
        rendered = _wait_in_page(browser, f"(() => {{ const ops = {operations}; return ops.length > 20 && ops; }})()")
        assert rendered, f"{page} rendered no operations offline"
        text = " ".join(rendered)
        assert "/api/projects" in text or "Create" in text
        operation_count = sum(len(methods) for methods in paths.values())
        assert len(rendered) >= operation_count * 0.9, (len(rendered), operation_count)
    finally:
        browser.close()


