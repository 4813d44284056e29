"""The API as a separate server process (uvicorn), for tests of HTTP semantics.

The in-process TestClient runs the app and the test in one event loop and so hides *when* work
happens relative to the response; a real server process on loopback does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT, free_port
from tests.platform_fixtures import wait_for


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


@contextmanager
def api_server(data_dir: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[str]:
    """Run `uvicorn api.app:create_app` on a free loopback port; yields the API base URL (…/api)."""
    port = free_port()
    log_path = data_dir.parent / f"uvicorn-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    server_env = {**os.environ, "INSPECT_DATA_DIR": str(data_dir), **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=REPO_ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(lambda: process.poll() is not None or _healthy(base_url), timeout, 0.2, "the API server to answer")
        assert process.poll() is None, log_path.read_text()[-3000:]
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
