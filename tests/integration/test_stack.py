"""`geti-inspect serve` as a user runs it: the whole stack comes up, heals, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import REPO_ROOT
from tests.network import free_port
from tests.platform_fixtures import TEST_STACK, wait_for

pytestmark = pytest.mark.slow

COMPONENTS = {"database", "prefect", "mlflow", "worker:training", "worker:inference", "jobs-index"}


def _health(port: int) -> tuple[int, dict]:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()


def _child(serve: psutil.Process, *words: str) -> psutil.Process:
    for child in serve.children():
        if all(word in " ".join(child.cmdline()) for word in words):
            return child
    raise AssertionError(f"no child running {words}")


def test_serve_starts_heals_and_stops_everything(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "INSPECT_PREFECT_PORT": str(free_port()), "INSPECT_MLFLOW_PORT": str(free_port())}
    log_file = tmp_path / "serve.log"
    with open(log_file, "wb") as log:
        serve = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port),
                                  "--data-dir", str(tmp_path / "data")],
                                 cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    process = psutil.Process(serve.pid)
    try:
        started = time.monotonic()
        wait_for(lambda: _health(port)[0] == 200 or serve.poll() is not None, 240, 1.0, "the stack to be healthy")
        assert serve.poll() is None, log_file.read_text()[-3000:]
        status, body = _health(port)
        assert status == 200 and set(body["components"]) == COMPONENTS, body
        print(f"serve healthy after {time.monotonic() - started:.1f} s")
        # A quiet console: the platform's own lifecycle, no third-party chatter, and start-up ends with
        # one block of addresses.
        wait_for(lambda: "Geti Inspect is ready" in log_file.read_text(), 30, 0.2, "the start-up block")
        output = log_file.read_text()
        banner = output[output.index("Geti Inspect is ready"):]
        data_dir = tmp_path / "data"
        for line in (f"API:        http://127.0.0.1:{port}/api", f"API docs:   http://127.0.0.1:{port}/api/docs",
                     "Prefect UI: http://127.0.0.1", "MLflow UI:  http://127.0.0.1", f"Data dir:   {data_dir}",
                     f"Log dir:    {data_dir / 'logs'}"):
            assert line in banner, banner
        assert "stack ready" in output and output.index("stack ready") < output.index("Geti Inspect is ready")
        for chatter in ("HTTP Request:", "alembic", "Uvicorn running", "GET /api/health", "FutureWarning",
                        "is deprecated"):  # timm's and anomalib's deprecations as the model catalog loads
            assert chatter not in output, chatter

        # A dead child is restarted; health says so while it is down.
        mlflow = _child(process, "mlflow", "server")
        os.killpg(mlflow.pid, signal.SIGKILL)
        wait_for(lambda: _health(port)[0] == 503, 20, 0.2, "health to report the dead MLflow server")
        assert not _health(port)[1]["components"]["mlflow"]["ok"]
        wait_for(lambda: _health(port)[0] == 200, 120, 1.0, "MLflow to be restarted")
        assert "restarted 1x" in _health(port)[1]["components"]["mlflow"]["detail"]
        assert _child(process, "mlflow", "server").pid != mlflow.pid

        descendants = process.children(recursive=True)
        assert len(descendants) >= 4
        serve.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        assert serve.wait(timeout=90) == 0, log_file.read_text()[-3000:]
        print(f"serve stopped in {time.monotonic() - stopping:.1f} s")
        gone = psutil.wait_procs(descendants, timeout=10)[1]
        assert not [child for child in gone if child.status() != psutil.STATUS_ZOMBIE], "children left behind"
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
        for child in process.children(recursive=True) if process.is_running() else []:
            child.kill()


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
