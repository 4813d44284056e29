"""Active pipelines API without a live run: validation, conflicts, and what happens when Prefect is down.

Prefect points at a closed loopback port here, so every answer below is decided by the API
itself (the end-to-end run with real workers is in tests/e2e/test_live_pipeline.py).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.database.models import ActivePipeline, Capture
from infra.settings import Settings
from infra.storage import blob_key
from tests.conftest import png_bytes
from tests.integration.pipeline_support import add_active_row, create_pipeline, insert_model
from tests.network import free_port


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = make_settings(prefect_api_url=f"http://127.0.0.1:{free_port()}/api")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def pipeline(client: TestClient) -> dict:
    project = client.post("/api/projects", json={"name": "Line 1"}).json()
    return create_pipeline(client, project["id"])


def test_start_validates_the_body_and_the_pipeline(client: TestClient) -> None:
    assert client.post("/api/active-pipelines", json={}).status_code == 422
    assert client.post("/api/active-pipelines", json={"pipeline_id": "not-a-uuid"}).status_code == 422
    extra = client.post("/api/active-pipelines", json={"pipeline_id": str(uuid.uuid4()), "fps": 3})
    assert extra.status_code == 422
    missing = client.post("/api/active-pipelines", json={"pipeline_id": str(uuid.uuid4())})
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


def test_a_model_that_is_not_ready_cannot_start(client: TestClient) -> None:
    project = client.post("/api/projects", json={"name": "Line 1"}).json()
    pipeline = create_pipeline(client, project["id"], model_id=insert_model(client, project["id"], status="training"))
    response = client.post("/api/active-pipelines", json={"pipeline_id": pipeline["id"]})
    assert response.status_code == 409
    assert "training, not ready" in response.json()["detail"]
    assert client.get("/api/active-pipelines").json() == []


def test_a_pipeline_that_already_runs_cannot_start_again(client: TestClient, pipeline: dict) -> None:
    running = add_active_row(client, pipeline["id"], "running")
    response = client.post("/api/active-pipelines", json={"pipeline_id": pipeline["id"]})
    assert response.status_code == 409
    assert running in response.json()["detail"]
    assert len(client.get("/api/active-pipelines").json()) == 1


def test_two_racing_starts_make_one_run(client: TestClient, pipeline: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both requests passed the idle check before either inserted its row; the database lets one in.
    monkeypatch.setattr("api.services.active_runs.ensure_idle", lambda *args: None)
    add_active_row(client, pipeline["id"], "starting")
    response = client.post("/api/active-pipelines", json={"pipeline_id": pipeline["id"]})
    assert response.status_code == 409
    assert "already being started" in response.json()["detail"]
    assert len(client.get("/api/active-pipelines").json()) == 1


def test_start_leaves_nothing_behind_when_prefect_is_down(client: TestClient, pipeline: dict) -> None:
    add_active_row(client, pipeline["id"], "stopped")  # earlier runs do not block a new one
    response = client.post("/api/active-pipelines", json={"pipeline_id": pipeline["id"]})
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"]
    assert [row["status"] for row in client.get("/api/active-pipelines").json()] == ["stopped"]


def test_list_and_get_show_status_metrics_and_filters(client: TestClient, pipeline: dict) -> None:
    metrics = {"frames_processed": 12, "anomalies_detected": 3, "avg_inference_time_ms": 21.5, "fps": 9.8,
               "sink_errors": 1, "internal_counter": 7}
    failed = add_active_row(client, pipeline["id"], "failed", message="video file /x.avi does not exist",
                     stopped_at=datetime.now(UTC))
    running = add_active_row(client, pipeline["id"], "running", metrics=metrics, started_at=datetime.now(UTC),
                      heartbeat_at=datetime.now(UTC))

    listed = client.get("/api/active-pipelines").json()
    assert [item["id"] for item in listed] == [running, failed]  # newest first
    live = client.get(f"/api/active-pipelines/{running}").json()
    assert live["status"] == "running" and live["message"] is None
    assert live["started_at"].endswith("Z")
    assert {key: live["metrics"][key] for key in metrics if key != "internal_counter"} == \
        {key: value for key, value in metrics.items() if key != "internal_counter"}
    assert "internal_counter" not in live["metrics"]
    dead = client.get(f"/api/active-pipelines/{failed}").json()
    assert dead["status"] == "failed" and dead["message"] == "video file /x.avi does not exist"
    assert dead["metrics"]["frames_processed"] == 0

    assert [item["id"] for item in client.get("/api/active-pipelines", params={"status": "failed"}).json()] == [failed]
    other = client.get("/api/active-pipelines", params={"pipeline_id": str(uuid.uuid4())}).json()
    assert other == []
    assert client.get("/api/active-pipelines", params={"status": "paused"}).status_code == 422
    assert client.get(f"/api/active-pipelines/{uuid.uuid4()}").status_code == 404


def test_a_running_pipeline_that_stopped_heart_beating_says_so(client: TestClient, pipeline: dict) -> None:
    stale = datetime(2020, 1, 1, tzinfo=UTC)
    active = add_active_row(client, pipeline["id"], "running", heartbeat_at=stale)
    shown = client.get(f"/api/active-pipelines/{active}").json()
    assert shown["status"] == "running"  # Prefect cannot be asked: the last known state, with a note
    assert shown["message"].startswith("no heartbeat for ")


def test_stop_conflicts_and_prefect_errors(client: TestClient, pipeline: dict) -> None:
    assert client.delete(f"/api/active-pipelines/{uuid.uuid4()}").status_code == 404
    stopped = add_active_row(client, pipeline["id"], "stopped")
    response = client.delete(f"/api/active-pipelines/{stopped}")
    assert response.status_code == 409 and "already stopped" in response.json()["detail"]

    running = add_active_row(client, pipeline["id"], "running")
    response = client.delete(f"/api/active-pipelines/{running}")
    assert response.status_code == 503
    assert client.get(f"/api/active-pipelines/{running}").json()["status"] == "running"  # the stop was undone


def test_a_pipeline_cannot_be_deleted_while_it_runs(client: TestClient, pipeline: dict) -> None:
    active = add_active_row(client, pipeline["id"], "starting")
    response = client.delete(f"/api/pipelines/{pipeline['id']}")
    assert response.status_code == 409 and active in response.json()["detail"]
    with client.app.state.sessionmaker() as session:
        session.get(ActivePipeline, uuid.UUID(active)).status = "stopped"
        session.commit()
    assert client.delete(f"/api/pipelines/{pipeline['id']}").status_code == 204


def test_capture_and_webrtc_need_a_running_pipeline(client: TestClient, pipeline: dict) -> None:
    stopped = add_active_row(client, pipeline["id"], "stopped")
    unknown = str(uuid.uuid4())
    offer = {"sdp": "v=0\r\n", "type": "offer"}
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}

    assert client.post(f"/api/active-pipelines/{unknown}/capture").status_code == 404
    response = client.post(f"/api/active-pipelines/{stopped}/capture")
    assert response.status_code == 409 and "stopped, not running" in response.json()["detail"]
    assert client.post(f"/api/active-pipelines/{stopped}/capture", params={"label": "normal"}).status_code == 422
    response = client.post(f"/api/active-pipelines/{stopped}/capture",
                           params={"add_to_dataset": "true", "label": "broken"})
    assert response.status_code == 422

    assert client.post("/api/webrtc/offer", json={"pipeline_id": unknown, **offer}).status_code == 404
    assert client.post("/api/webrtc/offer", json={"pipeline_id": stopped, **offer}).status_code == 409
    assert client.post("/api/webrtc/offer", json={"pipeline_id": stopped, "sdp": "v=0", "type": "answer"}
                       ).status_code == 422
    assert client.post("/api/webrtc/offer", json={"pipeline_id": stopped}).status_code == 422
    assert client.post("/api/webrtc/candidate", json={"pipeline_id": stopped, **candidate}).status_code == 409
    assert client.post("/api/webrtc/candidate", json={"pipeline_id": unknown, **candidate}).status_code == 404
    assert client.post("/api/webrtc/candidate", json={"pipeline_id": stopped, "sdpMLineIndex": 0}
                       ).status_code == 422


def test_a_running_pipeline_whose_endpoint_is_gone_answers_503(client: TestClient, pipeline: dict) -> None:
    active = add_active_row(client, pipeline["id"], "running", control_url=f"http://127.0.0.1:{free_port()}",
                     control_token="t" * 32)
    response = client.post(f"/api/active-pipelines/{active}/capture")
    assert response.status_code == 503 and "unreachable" in response.json()["detail"]
    with client.app.state.sessionmaker() as session:
        assert session.query(Capture).count() == 0


def test_capture_images_and_the_player_page_need_known_ids(client: TestClient, pipeline: dict) -> None:
    assert client.get(f"/api/captures/{uuid.uuid4()}.png").status_code == 404
    assert client.get("/api/captures/not-a-uuid.png").status_code == 422
    assert client.get(f"/api/active-pipelines/{uuid.uuid4()}/view").status_code == 404
    active = add_active_row(client, pipeline["id"], "running")
    view = client.get(f"/api/active-pipelines/{active}/view", follow_redirects=False)
    assert view.status_code == 307 and view.headers["location"] == f"/api/player?pipeline_id={active}"
    page = client.get(view.headers["location"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "../ui/static/webrtc.js" in page.text and "pipeline_id" in page.text
    module = client.get("/ui/static/webrtc.js")  # the WebRTC client it shares with the console's line view
    assert module.status_code == 200 and "RTCPeerConnection" in module.text and "/webrtc/offer" in module.text


def _capture(client: TestClient, pipeline_id: str, png: bytes) -> str:
    """A stored capture of a finished run of the pipeline; returns its blob hash."""
    digest = hashlib.sha256(png).hexdigest()
    client.app.state.store.put(blob_key(digest), png)
    with client.app.state.sessionmaker() as session:
        session.add(Capture(active_pipeline_id=uuid.UUID(add_active_row(client, pipeline_id, "stopped")), sha256=digest,
                            anomaly_score=0.9))
        session.commit()
    return digest


def test_deleting_a_pipeline_or_its_project_deletes_its_captures(client: TestClient, pipeline: dict) -> None:
    store = client.app.state.store
    first = _capture(client, pipeline["id"], png_bytes(color=(200, 10, 10)))
    assert client.delete(f"/api/pipelines/{pipeline['id']}").status_code == 204
    assert not store.exists(blob_key(first))

    project_id = pipeline["project_id"]
    again = create_pipeline(client, project_id)
    second = _capture(client, again["id"], png_bytes(color=(10, 200, 10)))
    store.put(f"models/{again['model_id']}/openvino/model.xml", b"<xml/>")
    live = add_active_row(client, again["id"], "running")
    refused = client.delete(f"/api/projects/{project_id}")
    assert refused.status_code == 409 and live in refused.json()["detail"]  # stop the line first
    assert client.get(f"/api/projects/{project_id}").status_code == 200 and store.exists(blob_key(second))
    with client.app.state.sessionmaker() as session:
        session.get(ActivePipeline, uuid.UUID(live)).status = "stopped"
        session.commit()
    assert client.delete(f"/api/projects/{project_id}").status_code == 204
    assert not store.exists(blob_key(second))
    assert list(store.list("models/")) == [] and list(store.list("blobs/")) == []
