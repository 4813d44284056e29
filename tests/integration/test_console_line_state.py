"""The lines pages read runs from the database; a run whose flow stopped reporting is asked about in Prefect.

A line whose flow process died leaves its row `running`. The lines list and the line view settle such a
row the way the API does (its flow run has ended, or Prefect no longer knows it: `failed`, with why), and
show "no heartbeat for N s" beside the last known state while Prefect cannot be asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.database.models import ActivePipeline
from tests.integration.pipeline_support import add_active_row, create_pipeline
from tests.network import free_port

SILENT_SINCE = datetime(2020, 1, 1, tzinfo=UTC)


def _list_cell(client: TestClient, project_id: str, pipeline_id: str) -> str:
    """The line's state cell on the lines list."""
    page = client.get(f"/ui/projects/{project_id}/lines")
    assert page.status_code == 200
    row = page.text.split(f'data-line-id="{pipeline_id}">', 1)[1]
    return row.split('data-field="state">', 1)[1].split("</td>", 1)[0]


def _view_state(client: TestClient, project_id: str, pipeline_id: str) -> str:
    """The line view's state badge and run message."""
    page = client.get(f"/ui/projects/{project_id}/lines/{pipeline_id}")
    assert page.status_code == 200
    header = page.text.split('id="line-state">', 1)[1].split("</h2>", 1)[0]
    return header + page.text.split('id="run-message">', 1)[1].split("</span>", 1)[0]


def _status(client: TestClient, active_id: str) -> str:
    with client.app.state.sessionmaker() as session:
        return session.get(ActivePipeline, uuid.UUID(active_id)).status


@pytest.fixture
def offline_client(make_settings) -> Iterator[TestClient]:
    """An API whose Prefect does not answer."""
    with TestClient(create_app(make_settings(prefect_api_url=f"http://127.0.0.1:{free_port()}/api"))) as client:
        yield client


def test_without_prefect_a_silent_line_keeps_its_state_and_says_how_long_it_has_been_silent(
        offline_client: TestClient) -> None:
    project = offline_client.post("/api/projects", json={"name": "Silent"}).json()
    line = create_pipeline(offline_client, project["id"])
    active = add_active_row(offline_client, line["id"], "running", heartbeat_at=SILENT_SINCE)
    for shown in (_list_cell(offline_client, project["id"], line["id"]),
                  _view_state(offline_client, project["id"], line["id"])):
        assert "running" in shown and "no heartbeat for " in shown, shown
    assert _status(offline_client, active) == "running"


def test_a_line_whose_flow_run_is_gone_shows_failed_and_a_reporting_one_is_left_alone(
        platform_client: TestClient) -> None:
    project = platform_client.post("/api/projects", json={"name": f"Dead lines {uuid.uuid4().hex[:6]}"}).json()
    seen_in_list, seen_in_view, alive = (create_pipeline(platform_client, project["id"], name=name)
                                         for name in ("Dead in the list", "Dead in its view", "Alive"))
    runs = {line["id"]: add_active_row(platform_client, line["id"], "running", heartbeat_at=SILENT_SINCE)
            for line in (seen_in_list, seen_in_view)}
    # Reports every second, as a live flow does: not asked about (Prefect does not know its run either).
    alive_run = add_active_row(platform_client, alive["id"], "running",
                               heartbeat_at=datetime.now(UTC) + timedelta(minutes=5))

    shown = _view_state(platform_client, project["id"], seen_in_view["id"])
    assert "failed" in shown and "no longer exists in Prefect" in shown, shown
    assert _status(platform_client, runs[seen_in_list["id"]]) == "running"  # a view settles its own line only
    shown = _list_cell(platform_client, project["id"], seen_in_list["id"])
    assert "failed" in shown and "no longer exists in Prefect" in shown, shown
    assert [_status(platform_client, active) for active in runs.values()] == ["failed", "failed"]
    assert _status(platform_client, alive_run) == "running"
    with platform_client.app.state.sessionmaker() as session:  # no line of this test stays running
        session.get(ActivePipeline, uuid.UUID(alive_run)).status = "stopped"
        session.commit()
