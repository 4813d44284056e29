"""`geti-inspect worker --server` says in one line why it cannot join, and exits non-zero.

Against a real API process (the shared keyed server, on SQLite and local storage) and a closed port.
The successful join across hosts is `tests/e2e/test_multihost.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import REPO_ROOT
from tests.integration.api_server import KeyedServer
from tests.machines import machine_env
from tests.network import free_port


def _join(server: str, key: str, data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "worker", "--server", server, "--api-key", key,
                           "--pool", "training", "--data-dir", str(data_dir)], cwd=REPO_ROOT, env=machine_env({}),
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong key", "refused the API key (401)"),
    ("sqlite server", "database is SQLite"),
    ("unreachable", "cannot reach the Geti Inspect API"),
])
def test_a_failed_join_is_one_line_and_a_non_zero_exit(keyed_server: KeyedServer, tmp_path: Path, case: str,
                                                       expected: str):
    server = f"http://127.0.0.1:{free_port()}" if case == "unreachable" else keyed_server.base_url
    result = _join(server, "wrong" if case == "wrong key" else keyed_server.key, tmp_path / "worker")
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert keyed_server.key not in result.stderr + result.stdout
    assert not (tmp_path / "worker").exists(), "nothing started, nothing written"


def test_the_worker_configuration_needs_a_key_on_the_server(client: TestClient):
    response = client.get("/api/cluster/worker-config")
    assert response.status_code == 403 and "INSPECT_API_KEY" in response.json()["detail"]


def test_a_platform_on_sqlite_is_refused_with_the_reason(keyed_server: KeyedServer):
    url = f"{keyed_server.base_url}/api/cluster/worker-config"
    assert httpx.get(url, timeout=30).status_code == 401
    response = httpx.get(url, headers={"X-API-Key": keyed_server.key}, timeout=30)
    assert response.status_code == 409 and "SQLite" in response.json()["detail"], response.text
