"""The jobs list comes from the jobs index (infra/orchestration/job_index.py), against the session's real
Prefect server: runs made in Prefect directly (not through the API) are listed and follow their state,
deleted runs leave, history from before the API started is listed, and a page of settled jobs is
served while Prefect is unreachable."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prefect import flow
from sqlalchemy import select

from api.app import create_app
from infra.database.engine import session_scope
from infra.database.migrate import upgrade
from infra.database.models import JobRecord, Project
from infra.settings import Settings
from tests.integration.tcp_relay import TcpRelay
from tests.platform_fixtures import Platform, wait_for

pytestmark = pytest.mark.slow


@flow(name="made-outside-the-api")
def outside_job() -> None:
    return None


@pytest.fixture
def prefect(platform: Platform) -> Iterator:
    """A client of the platform's Prefect, as a script or the Prefect UI would use it."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # The API URL in Prefect's settings too, else creating a run starts a temporary server.
    with temporary_settings({PREFECT_API_URL: platform.stack.prefect_api_url}), \
            SyncPrefectClient(platform.stack.prefect_api_url) as client:
        yield client


def _project(client: TestClient) -> str:
    response = client.post("/api/projects", json={"name": f"index {uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _run(prefect, tags: list[str], state, metrics: dict | None = None) -> str:
    from prefect.client.schemas.actions import ArtifactCreate

    run = prefect.create_flow_run(outside_job, tags=tags, state=state)
    if metrics is not None:
        prefect.create_artifact(ArtifactCreate(type="table", flow_run_id=run.id, data=json.dumps([metrics])))
    return str(run.id)


def _scheduled_tomorrow():
    from prefect.states import Scheduled

    return Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=1))  # no worker takes it: no deployment


def _completed():
    from prefect.states import Completed

    return Completed()


def _settled(database_url: str, job_ids: list[str]) -> bool:
    """Whether the index holds these jobs as settled (SETTLED_AFTER_S after they ended): lists stop asking Prefect."""
    with session_scope(database_url) as session:
        rows = session.scalars(select(JobRecord.settled).where(JobRecord.id.in_([uuid.UUID(i) for i in job_ids])))
        return sorted(rows) == [True] * len(job_ids)


def _listed(client: TestClient, project_id: str, job_id: str, **params) -> dict | None:
    response = client.get(f"/api/projects/{project_id}/jobs", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return next((job for job in response.json() if job["id"] == job_id), None)


def _status_is(client: TestClient, project_id: str, job_id: str, status: str):
    return lambda: (job := _listed(client, project_id, job_id)) is not None and job["status"] == status and job


def test_a_run_made_in_prefect_is_listed_and_follows_its_state(platform_client, prefect):
    from prefect.states import Completed, Running

    client = platform_client
    project_id = _project(client)
    job_id = _run(prefect, [f"project:{project_id}", "job:training"], _scheduled_tomorrow())

    pending = wait_for(_status_is(client, project_id, job_id, "pending"), 30, 0.2, "the run to be listed")
    assert pending["type"] == "training" and pending["project_id"] == project_id and pending["finished_at"] is None

    prefect.set_flow_run_state(uuid.UUID(job_id), Running(), force=True)
    running = wait_for(_status_is(client, project_id, job_id, "running"), 30, 0.2, "the run to be running")
    assert running["started_at"]
    assert _listed(client, project_id, job_id, status="running") == running

    prefect.create_artifact(_table(job_id, {"stage": "done", "image_auroc": 0.97}))
    prefect.set_flow_run_state(uuid.UUID(job_id), Completed(), force=True)
    done = wait_for(_status_is(client, project_id, job_id, "completed"), 30, 0.2, "the run to be completed")
    assert done["metrics"] == {"stage": "done", "image_auroc": 0.97} and done["progress"] == 1.0
    assert done["finished_at"] and _listed(client, project_id, job_id, status="running") is None
    assert _listed(client, project_id, job_id, status="completed", type="training") == done
    prefect.delete_flow_run(uuid.UUID(job_id))


def _table(job_id: str, row: dict):
    from prefect.client.schemas.actions import ArtifactCreate

    return ArtifactCreate(type="table", flow_run_id=uuid.UUID(job_id), data=json.dumps([row]))


def test_a_run_that_gets_its_project_later_is_listed_with_it(platform_client, prefect):
    """Like a scheduled retraining run: made with the job tag only, tagged with its project once it runs."""
    client = platform_client
    project_id = _project(client)
    job_id = _run(prefect, ["job:retraining"], _scheduled_tomorrow())
    poller = client.app.state.job_index_poller
    passes = poller.passes
    wait_for(lambda: poller.passes >= passes + 2, 30, 0.2, "the poller to see the run without a project")
    assert _listed(client, project_id, job_id) is None

    prefect.update_flow_run(uuid.UUID(job_id), tags=["job:retraining", f"project:{project_id}"])
    listed = wait_for(lambda: _listed(client, project_id, job_id), 30, 0.2, "the run to be listed with its project")
    assert listed["type"] == "retraining" and listed["status"] == "pending"
    prefect.delete_flow_run(uuid.UUID(job_id))


def test_a_run_deleted_in_prefect_leaves_the_list(platform, platform_client, prefect):
    client = platform_client
    project_id = _project(client)
    tags = [f"project:{project_id}", "job:export"]
    finished = _run(prefect, tags, _completed(), {"format": "onnx"})
    waiting = _run(prefect, tags, _scheduled_tomorrow())
    wait_for(lambda: _listed(client, project_id, finished) and _listed(client, project_id, waiting), 60, 0.2,
             "both runs to be listed")
    wait_for(lambda: _settled(platform.settings.resolved_database_url, [finished]), 60, 0.5,
             "the finished run to settle")

    # A settled row is never refreshed by a list: only the poller can notice that its run is gone.
    for job_id in (finished, waiting):
        prefect.delete_flow_run(uuid.UUID(job_id))
    wait_for(lambda: client.get(f"/api/projects/{project_id}/jobs").json() == [], 60, 0.2,
             "the deleted runs to leave the list")
    assert client.get(f"/api/jobs/{finished}").status_code == 404


def test_history_from_before_the_api_is_listed_and_settled_pages_need_no_prefect(platform: Platform, prefect,
                                                                                 tmp_path: Path):
    project_id = str(uuid.uuid4())
    tag = f"project:{project_id}"
    exports = [_run(prefect, [tag, "job:export"], _completed(), {"index": index}) for index in range(3)]
    waiting = _run(prefect, [tag, "job:training"], _scheduled_tomorrow())

    # A new API (own database) that reaches the same Prefect through a relay that can be cut.
    relay = TcpRelay(platform.settings.prefect_port)
    settings = Settings(data_dir=tmp_path / "data", prefect_api_url=f"http://127.0.0.1:{relay.port}/api")
    settings.resolved_data_dir.mkdir(parents=True)
    upgrade(settings.resolved_database_url)
    with session_scope(settings.resolved_database_url) as session:
        session.add(Project(id=uuid.UUID(project_id), name="history"))
    try:
        with TestClient(create_app(settings)) as client:
            path = f"/api/projects/{project_id}/jobs"
            everything = wait_for(lambda: (jobs := client.get(path).json()) and len(jobs) == 4 and jobs, 60, 0.2,
                                  "the poller's first pass to list the runs made before the API started")
            assert [job["id"] for job in everything] == [waiting, *exports[::-1]]  # newest first
            assert [job["metrics"] for job in everything[1:]] == [{"index": 2}, {"index": 1}, {"index": 0}]
            assert {job["status"] for job in everything[1:]} == {"completed"}
            wait_for(lambda: _settled(settings.resolved_database_url, exports), 60, 0.5, "the finished runs to settle")
            settled = client.get(path, params={"type": "export"}).json()
            assert settled == everything[1:]

            relay.close()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            # Prefect is unreachable for this API: a page of settled jobs is served from the index alone.
            for params in ({"type": "export"}, {"type": "export", "limit": 2, "offset": 1}):
                response = client.get(path, params=params)
                assert response.status_code == 200, response.text
                assert response.json() == settled[params.get("offset", 0):][:params.get("limit", 20)]
    finally:
        relay.close()
        prefect.delete_flow_run(uuid.UUID(waiting))
