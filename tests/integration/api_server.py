"""The API alone in a uvicorn subprocess on a free port, configured through INSPECT_* variables.

For HTTP semantics that the in-process TestClient hides (middlewares, headers, real sockets). No
Prefect or MLflow is started: INSPECT_PREFECT_API_URL points at a closed port and
INSPECT_PREFECT_CONNECT_RETRIES is 0, so job routes answer 503 at once instead of waiting for a server.

A plugin registered once by ``tests/conftest.py``: its session fixtures start one process each for the
whole session, ``isolated_server`` (no key) and ``keyed_server`` (INSPECT_API_KEY set).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, stop_process
from tests.network import free_port

# The key of the shared `keyed_server` (random per test session).
API_KEY = secrets.token_urlsafe(24)


@contextmanager
def api_server(data_dir: Path, env: Mapping[str, str] | None = None, start_timeout: float = 180,
               isolated: bool = True) -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) of a running API; it is stopped and reaped on exit.

    ``isolated``: Prefect and MLflow addresses point at closed ports (job routes answer 503 at once);
    pass False with ``env`` from ``settings_env(platform.settings)`` to use the session platform.
    """
    port = free_port()
    log_path = data_dir.parent / f"uvicorn-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "INSPECT_DATA_DIR": str(data_dir),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Nothing listens there: no connection attempt made again (Prefect's client makes 3, 1.5 s per job route).
        **({"INSPECT_PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api", "INSPECT_PREFECT_CONNECT_RETRIES": "0",
            "INSPECT_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"} if isolated else {}),
        **(env or {}),
    }
    command = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=child_env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(f"{base_url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield base_url
    finally:
        stop_process(process, timeout=15)


@dataclass(frozen=True)
class ServerProcess:
    base_url: str  # http://127.0.0.1:PORT
    data_dir: Path


@dataclass(frozen=True)
class KeyedServer(ServerProcess):
    key: str


@pytest.fixture(scope="session")
def isolated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One API process without a key, Prefect or MLflow, for the session (offline docs, commit-before-answer)."""
    data_dir = tmp_path_factory.mktemp("isolated") / "data"
    with api_server(data_dir) as base_url:
        yield ServerProcess(base_url, data_dir)


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedServer]:
    """One API process with INSPECT_API_KEY set, shared by the access-control and contract-fuzz tests."""
    key = API_KEY
    data_dir = tmp_path_factory.mktemp("keyed") / "data"
    with api_server(data_dir, {"INSPECT_API_KEY": key}) as base_url:
        # The first call imports the model catalog (anomalib, tens of seconds on a busy machine): once, up front.
        httpx.get(f"{base_url}/api/trainable-models", headers={"X-API-Key": key}, timeout=300)
        yield KeyedServer(base_url, data_dir, key)
