"""What the console's browser tests share: a page that records every request and script error.

Chromium runs with the same offline switches as the other browser tests (tests/browser.py): names
other than loopback resolve to nothing and other connections go to a dead proxy, so a page that
reached for the internet would fail visibly; the recorder also lists each request so a test can
assert that none left loopback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"data", "blob", "about", "chrome-error"}
VIEWPORT = {"width": 1366, "height": 768}


@dataclass
class PageRecord:
    """Requests, console errors and uncaught exceptions of one browser context."""

    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, URL)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    # Console errors a test provokes on purpose (e.g. the 4xx of a refused form), as regular expressions.
    expected_errors: list[re.Pattern[str]] = field(default_factory=list)

    def expect_error(self, pattern: str) -> None:
        self.expected_errors.append(re.compile(pattern))

    def urls(self, method: str) -> list[str]:
        return [url for verb, url in self.requests if verb == method]

    def off_loopback(self) -> list[str]:
        outside = []
        for _, url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in LOCAL_SCHEMES:
                continue
            if parts.hostname not in LOOPBACK_HOSTS:
                outside.append(url)
        return outside

    def unexpected_console_errors(self) -> list[str]:
        return [text for text in self.console_errors
                if not any(pattern.search(text) for pattern in self.expected_errors)]

    def assert_clean(self) -> None:
        assert not self.off_loopback(), f"requests left loopback: {self.off_loopback()}"
        assert not self.page_errors, f"script errors: {self.page_errors}"
        assert not self.unexpected_console_errors(), f"console errors: {self.unexpected_console_errors()}"
