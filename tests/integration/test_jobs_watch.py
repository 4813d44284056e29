"""`geti-inspect jobs watch` against a real API server process on the session platform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import REPO_ROOT, png_bytes
from tests.integration.media_support import upload
from tests.platform_fixtures import wait_job

pytestmark = pytest.mark.slow


def watch(job_id: str, api_url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "jobs", "watch", job_id, "--api-url", api_url,
                           "--interval", "0.3"], cwd=REPO_ROOT, env={**os.environ, "COLUMNS": "200", **(env or {})},
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def api_url(platform_api_url: str) -> str:
    """The session's uvicorn process on the platform's database, Prefect and MLflow."""
    return f"{platform_api_url}/api"


def test_watch_follows_a_job_to_completion_and_prints_its_metrics(platform_client, api_url) -> None:
    project = platform_client.post("/api/projects", json={"name": "watched"}).json()
    assert upload(platform_client, project["id"], [("a.png", png_bytes()), ("b.png", png_bytes(color=(9, 9, 9)))]
                  ).status_code == 201
    job_id = platform_client.post(f"/api/projects/{project['id']}/snapshots", json={"name": "s"}).json()["job_id"]

    result = watch(job_id, api_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"job {job_id} completed" in result.stdout and "media_count" in result.stdout
    assert "100%" in result.stdout


def test_watch_exits_non_zero_with_the_reason_when_the_job_is_cancelled(platform_client, api_url) -> None:
    project = platform_client.post("/api/projects", json={"name": "cancelled"}).json()
    images = [(f"{i}.png", png_bytes(color=(i * 20, 100, 100))) for i in range(4)]
    assert upload(platform_client, project["id"], images).status_code == 201
    accepted = platform_client.post(f"/api/projects/{project['id']}/train",
                                    json={"model_name": "never", "architecture": "padim",
                                          "parameters": {"backbone": "mobilenetv2_100"}})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert platform_client.delete(f"/api/jobs/{job_id}").status_code == 204
    wait_job(platform_client, job_id, {"cancelled", "failed"}, 180)

    result = watch(job_id, api_url)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"job {job_id} cancelled" in result.stdout


def test_watch_an_unknown_job_or_a_wrong_address_exits_2(api_url) -> None:
    unknown = watch(str(uuid.uuid4()), api_url)
    assert unknown.returncode == 2 and "404" in unknown.stdout and "not found" in unknown.stdout
    nowhere = watch(str(uuid.uuid4()), "http://127.0.0.1:9/api")
    assert nowhere.returncode == 2 and "does not answer" in nowhere.stdout


class _RecordingApi(BaseHTTPRequestHandler):
    """Answers every job read with a completed job and records the Authorization header it got."""

    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append(self.headers.get("Authorization"))
        body = json.dumps({"id": self.path.rsplit("/", 1)[1], "type": "training", "status": "completed",
                           "progress": 1.0, "metrics": {"stage": "done", "image_auroc": 0.93}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_watch_sends_the_api_key_as_a_bearer_token() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingApi)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api"
        result = watch(str(uuid.uuid4()), url, {"INSPECT_API_KEY": "s3cret-key"})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "image_auroc" in result.stdout and "0.9300" in result.stdout
        assert _RecordingApi.seen and set(_RecordingApi.seen) == {"Bearer s3cret-key"}
        assert "s3cret-key" not in result.stdout + result.stderr
        _RecordingApi.seen.clear()
        assert watch(str(uuid.uuid4()), url, {"INSPECT_API_KEY": ""}).returncode == 0
        assert set(_RecordingApi.seen) == {None}
    finally:
        server.shutdown()
        server.server_close()
