"""With INSPECT_API_KEY set the API docs still work, offline, in a real browser (Playwright + Chromium).

Swagger renders without the key (pages and assets are public), *Authorize* with the key then
*Try it out* on ``GET /api/projects`` answers 200, and ReDoc renders without the key and without
a single request beyond the API (its bundle's CDN logo is gone).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.browser import chromium_available, playwright_chromium
from tests.integration.api_server import KeyedServer

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not chromium_available(), reason="headless Chromium is not installed"),
]


@pytest.fixture
def offline_page(keyed_server: KeyedServer) -> Iterator[tuple[object, list[str]]]:
    """A page whose every request outside the API is refused and recorded (a factory network)."""
    outside: list[str] = []

    def route(route) -> None:  # noqa: ANN001 - Playwright's Route
        if route.request.url.startswith(keyed_server.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with playwright_chromium() as browser:
        page = browser.new_page()
        page.route("**/*", route)
        yield page, outside


def test_swagger_renders_and_authorize_then_try_it_out_answers_200(keyed_server: KeyedServer,
                                                                    offline_page) -> None:
    page, outside = offline_page
    base = keyed_server.base_url
    assert httpx.get(f"{base}/api/projects").status_code == 401  # the key is really required
    page.goto(f"{base}/api/docs")
    page.wait_for_function("document.querySelectorAll('.opblock-summary-path').length > 20", timeout=60_000)
    page.click("button.authorize")
    page.locator(".modal-ux input[type=text], .modal-ux input[type=password]").first.fill(keyed_server.key)
    page.locator(".modal-ux button.authorize").first.click()
    page.click(".modal-ux button.btn-done, .modal-ux .close-modal")
    operation = page.locator(".opblock-get", has=page.locator(".opblock-summary-path[data-path='/api/projects']"))
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip() == "200"
    assert outside == []


def test_redoc_renders_without_the_key_and_fetches_nothing_outside(keyed_server: KeyedServer,
                                                                   offline_page) -> None:
    page, outside = offline_page
    page.goto(f"{keyed_server.base_url}/api/redoc")
    page.wait_for_function("document.querySelectorAll('[data-section-id^=\"operation\"]').length > 20",
                           timeout=60_000)
    page.wait_for_load_state("networkidle")
    assert outside == []
    assert page.locator("img[alt='redocly logo']").count() == 0  # no broken image either
