"""Submitting a job rides out a busy Prefect: its 503s are retried within milliseconds.

Prefect's SQLite server answers 503 to creating a run when another write commits in the middle of it;
its client would wait 2 s. The "Prefect" here is a real HTTP server on loopback that answers as a busy
Prefect does, so the submission's attempts can be counted.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from infra.orchestration import client as client_module
from infra.orchestration.client import BusyRetries, OrchestrationUnavailable, Orchestrator
from infra.orchestration.jobs import JobType
from tests.network import free_port

DEPLOYMENT_ID = uuid.uuid4()


class BusyPrefect(ThreadingHTTPServer):
    """Answers the first `busy` run creations with `status`, then creates the run; records every attempt."""

    def __init__(self, busy: int, status: int = 503) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.busy, self.status = busy, status
        self.attempts: list[dict] = []
        self.run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="bright-otter", deployment_id=DEPLOYMENT_ID)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


class _Handler(BaseHTTPRequestHandler):
    server: BusyPrefect

    def log_message(self, *_: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/api/deployments/name/"):
            self._answer(200, {"id": str(DEPLOYMENT_ID), "name": "snapshot", "flow_id": str(self.server.run.flow_id)})
        else:
            self._answer(404, {"detail": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != f"/api/deployments/{DEPLOYMENT_ID}/create_flow_run":
            self._answer(404, {"detail": "not found"})
            return
        self.server.attempts.append(body)
        if len(self.server.attempts) <= self.server.busy:
            self._answer(self.server.status, {"exception_message": "Service Unavailable"})
        else:
            self._answer(201, self.server.run.model_dump(mode="json"))


@pytest.fixture
def prefect(request: pytest.FixtureRequest) -> Iterator[BusyPrefect]:
    server = BusyPrefect(*request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("prefect", [(2,)], indirect=True)
def test_a_busy_prefect_is_asked_again_at_once(prefect: BusyPrefect) -> None:
    orchestrator = Orchestrator(prefect.api_url)
    try:
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):  # Prefect's own (2 s) retries out of the way
            job_id = orchestrator.submit(JobType.SNAPSHOT, uuid.uuid4(), {"snapshot_id": "s"})
    finally:
        orchestrator.close()

    assert job_id == prefect.run.id
    assert len(prefect.attempts) == 3  # two 503s, then created
    assert prefect.attempts[0] == prefect.attempts[2]  # the very same request


@pytest.mark.parametrize("prefect", [(1, 409)], indirect=True)
def test_a_refusal_is_not_retried(prefect: BusyPrefect) -> None:
    orchestrator = Orchestrator(prefect.api_url)
    try:
        with pytest.raises(OrchestrationUnavailable):
            orchestrator.submit(JobType.SNAPSHOT, uuid.uuid4(), {})
    finally:
        orchestrator.close()
    assert len(prefect.attempts) == 1


@pytest.mark.parametrize("prefect", [(1000,)], indirect=True)
def test_the_quick_retries_end_with_prefects_answer(prefect: BusyPrefect, monkeypatch: pytest.MonkeyPatch) -> None:
    """After its quick retries the transport hands the 503 on (Prefect's client then waits its own 2, 4... s)."""
    monkeypatch.setattr(client_module, "BUSY_RETRIES_S", (0.01, 0.01))
    with httpx.Client(transport=BusyRetries(httpx.HTTPTransport())) as http:
        response = http.post(f"{prefect.api_url}/deployments/{DEPLOYMENT_ID}/create_flow_run", json={"tags": []})
    assert response.status_code == 503
    assert len(prefect.attempts) == 3


@pytest.mark.parametrize(("retries", "slowest_s", "quickest_s"), [(0, 0.4, 0.0), (2, 1.3, 0.45)])
def test_a_refused_connection_is_tried_again_as_often_as_configured(retries: int, slowest_s: float,
                                                                    quickest_s: float) -> None:
    """INSPECT_PREFECT_CONNECT_RETRIES: nothing listens, so the job read answers unavailable after the retries'
    backoff (httpcore's: none before the first retry, 0.5 s before the second; Prefect's 3 would add 1 s more),
    or at once with none."""
    orchestrator = Orchestrator(f"http://127.0.0.1:{free_port()}/api", connect_retries=retries)
    try:
        started = time.monotonic()
        with pytest.raises(OrchestrationUnavailable, match="Connection refused"):
            orchestrator.get_job(uuid.uuid4())
        assert quickest_s <= time.monotonic() - started < slowest_s
    finally:
        orchestrator.close()
