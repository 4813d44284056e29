"""Headless Chromium driven over the DevTools protocol on loopback (tests skip when it is absent)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx

from tests.network import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# Every host name but loopback resolves to nothing and every non-loopback connection goes to a dead
# proxy: the page sees a network without internet, as on a factory floor.
OFFLINE_ARGS = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9")
# The page answers an evaluation between its own scripts: ReDoc rendering the whole API kept one waiting past 10 s
# on a slow, busy 2-core host.
EVALUATE_TIMEOUT_S = 30.0


def chromium_available() -> bool:
    return shutil.which("chromium") is not None


class HeadlessChromium:
    """Chromium with the DevTools protocol on loopback; ``evaluate`` runs JS in the page."""

    def __init__(self, url: str, extra_args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.process = subprocess.Popen(
            [
                "chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={self.profile}",
                f"--remote-debugging-port={self.port}",
                "--remote-allow-origins=*",
                *extra_args,
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.socket_url = self._page_socket()
        self._id = 0

    def _page_socket(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                pages = [t for t in httpx.get(f"http://127.0.0.1:{self.port}/json/list").json() if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("Chromium's DevTools endpoint did not come up")

    def evaluate(self, expression: str, await_promise: bool = False) -> object:
        from websockets.sync.client import connect

        self._id += 1
        params = {"expression": expression, "returnByValue": True, "awaitPromise": await_promise}
        with connect(self.socket_url, max_size=None) as socket:
            socket.send(json.dumps({"id": self._id, "method": "Runtime.evaluate", "params": params}))
            while True:
                message = json.loads(socket.recv(timeout=EVALUATE_TIMEOUT_S))
                if message.get("id") == self._id:
                    return message["result"]["result"].get("value")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)


@contextmanager
def playwright_chromium() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (no browser download: its own build is not installable here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
