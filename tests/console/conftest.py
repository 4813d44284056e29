"""Fixtures of the console tests: one API process with a key, one Chromium, a signed-in page per test.

Chromium is Debian's (``/usr/bin/chromium``) driven by Playwright for Python; nothing is downloaded.
Without Playwright or Chromium the browser tests skip with the reason, unless
``INSPECT_TEST_REQUIRE_SERVICES=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import OFFLINE_ARGS
from tests.console.support import VIEWPORT, PageRecord
from tests.integration.api_server import API_KEY, api_server
from tests.services import require_service

CHROMIUM = os.environ.get("INSPECT_TEST_CHROMIUM", "/usr/bin/chromium")


@dataclass(frozen=True)
class ConsoleServer:
    base_url: str
    data_dir: Path
    key: str

    def api(self) -> httpx.Client:
        """An HTTP client that sends the key, for arranging data and checking what the pages stored."""
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": self.key}, timeout=30)


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """One API process (uvicorn, isolated from Prefect and MLflow) with INSPECT_API_KEY set."""
    data_dir = tmp_path_factory.mktemp("console") / "data"
    with api_server(data_dir, {"INSPECT_API_KEY": API_KEY, "INSPECT_JOB_INDEX_POLL_S": "0"}) as base_url:
        yield ConsoleServer(base_url, data_dir, API_KEY)


@pytest.fixture(scope="package")
def platform_console(platform: Any) -> Iterator[ConsoleServer]:
    """An API process (with a key) on the session platform's database, storage, Prefect and MLflow, for pages
    that run real jobs or show trained models; its jobs index polls every second."""
    from infra.supervisor.environment import settings_env

    settings = platform.settings
    env = {**settings_env(settings), "INSPECT_API_KEY": API_KEY, "INSPECT_JOB_INDEX_POLL_S": "1"}
    with api_server(settings.resolved_data_dir, env, isolated=False) as url:
        yield ConsoleServer(url, settings.resolved_data_dir, API_KEY)


@pytest.fixture
def platform_page(browser: Any, platform_console: ConsoleServer) -> Iterator[BrowserPage]:
    """A page signed in to `platform_console`; at the end, no request left loopback and no script failed."""
    context, view = open_page(browser, platform_console.base_url)
    try:
        sign_in(view, platform_console.key)
        yield view
        view.record.assert_clean()
    finally:
        context.close()


# Package scope, not session: while sync_playwright() is open its event loop counts as running in the main
# thread, and every later test that calls asyncio.run() (aiortc viewers, Prefect clients) would fail.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("Playwright for Python", False, "not installed (pip install -e '.[dev]')")
    path = Path(CHROMIUM) if Path(CHROMIUM).exists() else Path(shutil.which("chromium") or CHROMIUM)
    require_service("Chromium", path.exists(), f"not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(path), args=["--no-sandbox", *OFFLINE_ARGS])
        yield chromium
        chromium.close()


@dataclass
class BrowserPage:
    page: Any  # playwright.sync_api.Page
    record: PageRecord
    base_url: str

    def goto(self, path: str) -> Any:
        return self.page.goto(f"{self.base_url}{path}")


def open_page(browser: Any, base_url: str, javascript: bool = True, **options: Any) -> tuple[Any, BrowserPage]:
    """A fresh context (no cookies) at 1366x768 whose requests and script errors are recorded; `options` go to
    Playwright's new_context (a timezone_id, say)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url, java_script_enabled=javascript, **options)
    record = PageRecord()
    context.on("request", lambda request: record.requests.append((request.method, request.url)))
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda message: record.console_errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: record.page_errors.append(str(error)))
    return context, BrowserPage(page, record, base_url)


def sign_in(view: BrowserPage, key: str) -> None:
    view.goto("/ui/")
    view.page.get_by_label("API key").fill(key)
    view.page.get_by_role("button", name="Sign in").click()
    view.page.wait_for_url("**/ui/")


@contextmanager
def checked_page(browser: Any, base_url: str, **options: Any) -> Iterator[BrowserPage]:
    """A fresh page (see open_page); at the end, no request left loopback and no script failed."""
    context, view = open_page(browser, base_url, **options)
    try:
        yield view
        view.record.assert_clean()
    finally:
        context.close()


@pytest.fixture
def anonymous_page(browser: Any, console_server: ConsoleServer) -> Iterator[BrowserPage]:
    """A page that has not signed in; at the end, no request left loopback and no script failed."""
    with checked_page(browser, console_server.base_url) as view:
        yield view


@pytest.fixture
def console(anonymous_page: BrowserPage, console_server: ConsoleServer) -> BrowserPage:
    """A page signed in through the sign-in form."""
    sign_in(anonymous_page, console_server.key)
    return anonymous_page
