"""Tests that need a real service: skipped on a laptop without it, failed in CI (INSPECT_TEST_REQUIRE_SERVICES=1).

Kept free of the app's imports, so that the test of the switch itself can run it in a bare pytest.
`tests/conftest.py` re-exports `require_service`; use it from there.
"""

from __future__ import annotations

import os

import pytest

# CI (.ci/run) sets it: a test whose service is missing fails instead of skipping.
REQUIRE_SERVICES_ENV = "INSPECT_TEST_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES_ENV, "").strip().lower() in ("1", "true", "yes")


def require_service(name: str, available: bool, reason: str = "") -> None:
    """Go on when the service is there; else skip (a newcomer's laptop) or, with INSPECT_TEST_REQUIRE_SERVICES=1
    (CI), fail, so that a missing service never hides a regression behind a skip."""
    if available:
        return
    message = f"{name} is not available" + (f": {reason}" if reason else "")
    if services_required():
        pytest.fail(f"{message} ({REQUIRE_SERVICES_ENV}=1: a missing service fails the test)", pytrace=False)
    pytest.skip(message)
