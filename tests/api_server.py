"""The REST API as a real server process (uvicorn on a loopback port), for HTTP-level tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from infra.settings import Settings
from tests.platform_fixtures import wait_for


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


@contextmanager
def api_server(settings: Settings, log_file: Path) -> Iterator[str]:
    """Serve `create_app()` on `settings` (passed as INSPECT_* variables); yields the base URL."""
    from tests.conftest import REPO_ROOT, free_port

    port = free_port()
    env = {**os.environ, "INSPECT_DATA_DIR": str(settings.resolved_data_dir),
           "INSPECT_PREFECT_PORT": str(settings.prefect_port), "INSPECT_MLFLOW_PORT": str(settings.mlflow_port),
           "INSPECT_MIN_NORMAL_IMAGES": str(settings.min_normal_images)}
    url = f"http://127.0.0.1:{port}"
    with open(log_file, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
                                    "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                   cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: process.poll() is not None or _healthy(url), 60, 0.2, "the API server to answer")
        assert process.poll() is None, log_file.read_text()[-3000:]
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
