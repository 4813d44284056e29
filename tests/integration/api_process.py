"""The REST API in its own uvicorn process on the session platform's settings (real HTTP timing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from infra.settings import Settings
from infra.supervisor.environment import settings_env
from tests.conftest import REPO_ROOT, free_port
from tests.platform_fixtures import wait_for


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


@contextmanager
def api_process(settings: Settings, log_path: Path) -> Iterator[str]:
    """`uvicorn --factory api.app:create_app` with the settings as INSPECT_* variables; yields its base URL."""
    port = free_port()
    env = {**os.environ, **settings_env(settings), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
                                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                  cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url) or server.poll() is not None, 60, 0.25, "the API process to answer")
        assert server.poll() is None, log_path.read_text()[-3000:]
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=5)
