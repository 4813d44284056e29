"""The stack pointed at external Prefect and MLflow servers: configuration only, nothing started locally.

`serve`'s own life (start, heal, kill, restart, stop) is `test_serve_lifecycle.py`.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.platform_fixtures import TEST_STACK, wait_for

pytestmark = pytest.mark.slow


def test_external_prefect_and_mlflow_start_nothing_locally(platform, tmp_path: Path):
    """Pointing at external servers is configuration only: no child process, same checks and setup."""
    from infra.settings import Settings
    from infra.supervisor import Stack

    external = Settings(data_dir=tmp_path / "data", prefect_api_url=platform.stack.prefect_api_url,
                        mlflow_tracking_uri=platform.stack.mlflow_uri)
    stack = Stack(external, TEST_STACK)  # the same crash automation as the session platform's
    before = psutil.Process().children(recursive=True)
    stack.start()  # applies pools, deployments and the crash automation again: idempotent
    try:
        assert stack.processes() == [] and not stack.local_prefect and not stack.local_mlflow
        assert {child.pid for child in psutil.Process().children()} <= {child.pid for child in before}

        def healthy() -> dict | None:
            found = {name: check() for name, check in stack.health_checks().items()}
            return found if all(ok for ok, _ in found.values()) else None

        # The session platform's workers show online once their fork servers have imported: when this test is
        # the first to use the platform, that is seconds after it started.
        health = wait_for(healthy, 120, interval=1, what="every health check of the external stack to pass")
        assert "online worker" in health["worker:training"][1] and "external" in health["mlflow"][1]
    finally:
        stack.stop()
