"""A live pipeline end to end: the API starts a long-running flow run on the real `inference` worker.

One scenario on a looping video of synthetic parts with a filesystem sink and a tiny PaDiM OpenVINO model:
starting → running, metrics growing, a threshold changed live, events in the sink folder, a
capture added to the dataset, WebRTC frames through the API's signalling proxy, an API restart
that still finds it, and a stop that ends it within seconds. Beside it, a pipeline whose video
file is missing ends `failed` with the reason (and its run FAILED, not retried).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.database.models import ActivePipeline, Model
from infra.model_files import openvino_prefix, upload_folder
from tests.integration.pipeline_support import create, insert_model
from tests.platform_fixtures import Platform, wait_for
from tests.webrtc_viewer import watch

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 90  # worker poll + flow process start + model compile, on 2 busy cores
STOP_TIMEOUT_S = 20


def active(client: TestClient, active_id: str) -> dict:
    response = client.get(f"/api/active-pipelines/{active_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_status(client: TestClient, active_id: str, statuses: set[str], timeout: float) -> dict:
    def reached() -> dict | None:
        current = active(client, active_id)
        return current if current["status"] in statuses else None

    return wait_for(reached, timeout, what=f"active pipeline {active_id} to be {sorted(statuses)}")  # type: ignore


def events(folder: Path) -> list[dict]:
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except ValueError:  # being written right now
            continue
    return found


@pytest.fixture
def line(platform_client: TestClient, model_dir: Path, part_video: Path, tmp_path: Path) -> dict:
    """A project with a ready model (IR in the platform's object store), a looping video and a folder sink."""
    client = platform_client
    project = client.post("/api/projects", json={"name": "Live"}).json()
    xml = next(model_dir.rglob("model.xml"))
    model_id = insert_model(client, project["id"])
    # A second model, still training: the live swap must wait until it is ready.
    next_model = insert_model(client, project["id"], name="PaDiM v2", status="training")
    for stored in (model_id, next_model):
        assert upload_folder(client.app.state.store, xml.parent, openvino_prefix(stored))
    source = create(client, project["id"], "sources",
                    {"type": "video_file", "name": "Line video", "config": {"path": str(part_video), "loop": True}})
    missing = create(client, project["id"], "sources",
                     {"type": "video_file", "name": "Gone", "config": {"path": str(tmp_path / "gone.avi")}})
    sink = create(client, project["id"], "sinks",
                  {"type": "filesystem", "name": "Folder",
                   "config": {"output_dir": str(tmp_path / "events"), "save_images": True}})
    parts = {"model_id": model_id, "sink_id": sink["id"]}
    good = create(client, project["id"], "pipelines", {"name": "Line 1", "source_id": source["id"], **parts,
                                                       "config": {"threshold": 1.0, "fps": 10}})
    broken = create(client, project["id"], "pipelines", {"name": "Line 2", "source_id": missing["id"], **parts})
    return {"project": project, "good": good, "broken": broken, "events": tmp_path / "events",
            "missing_path": str(tmp_path / "gone.avi"), "next_model": next_model}


def runtime_status(client: TestClient, active_id: str) -> dict:
    """The pipeline's own view, read from its control endpoint with the token on the row."""
    with client.app.state.sessionmaker() as session:
        row = session.get(ActivePipeline, uuid.UUID(active_id))
        url, token = row.control_url, row.control_token
    return httpx.get(f"{url}/status", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()


def flow_process(client: TestClient, active_id: str) -> psutil.Process:
    """The flow-run process that serves the pipeline's control endpoint."""
    with client.app.state.sessionmaker() as session:
        port = urlsplit(session.get(ActivePipeline, uuid.UUID(active_id)).control_url).port
    owners = {conn.pid for conn in psutil.net_connections("tcp") if conn.laddr and conn.laddr.port == port
              and conn.status == psutil.CONN_LISTEN}
    assert len(owners) == 1, owners
    return psutil.Process(owners.pop())


def test_a_live_pipeline_runs_serves_and_stops(platform: Platform, platform_client: TestClient, line: dict) -> None:
    client = platform_client
    good, broken = line["good"], line["broken"]

    started = client.post("/api/active-pipelines", json={"pipeline_id": good["id"]})
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["pipeline_id"] == good["id"] and body["status"] == "starting"
    run_id = body["id"]
    failing = client.post("/api/active-pipelines", json={"pipeline_id": broken["id"]}).json()["id"]

    again = client.post("/api/active-pipelines", json={"pipeline_id": good["id"]})
    assert again.status_code == 409 and run_id in again.json()["detail"]
    assert client.delete(f"/api/pipelines/{good['id']}").status_code == 409
    job = client.get(f"/api/jobs/{body['job_id']}").json()
    assert job["type"] == "inference" and job["project_id"] == line["project"]["id"]

    # The missing video: failed with the reason, its run FAILED, and never retried.
    failed = wait_status(client, failing, {"failed", "running", "stopped"}, START_TIMEOUT_S)
    assert failed["status"] == "failed", failed
    assert line["missing_path"] in failed["message"]
    assert failed["stopped_at"] is not None
    failed_job = wait_for(lambda: (job := client.get(f"/api/jobs/{failed['job_id']}").json())["status"] != "running"
                          and job, 15, what="the failed flow run to end")
    assert failed_job["status"] == "failed" and line["missing_path"] in (failed_job["message"] or "")  # type: ignore

    running = wait_status(client, run_id, {"running", "failed", "stopped"}, START_TIMEOUT_S)
    assert running["status"] == "running", running
    assert running["started_at"] is not None
    first = wait_for(lambda: active(client, run_id)["metrics"]["frames_processed"] >= 3 and active(client, run_id),
                     20, what="frames to be processed")["metrics"]  # type: ignore[index]
    assert first["avg_inference_time_ms"] > 0 and first["sink_errors"] == 0
    later = wait_for(lambda: (m := active(client, run_id)["metrics"])["frames_processed"] > first["frames_processed"]
                     and m, 10, what="metrics to grow")
    assert later["fps"] > 0  # type: ignore[index]
    beats = set()
    for _ in range(4):
        beats.add(active(client, run_id)["heartbeat_at"])
        time.sleep(0.6)
    assert len(beats) >= 2  # written at least once a second

    # A new threshold applies without a restart: at 0 every frame is an anomaly event in the sink folder.
    patched = client.patch(f"/api/pipelines/{good['id']}", json={"config": {"threshold": 0.0}})
    assert patched.status_code == 200
    live_events = wait_for(lambda: [event for event in events(line["events"]) if event["threshold"] == 0.0][3:],
                           15, what="events at the new threshold")
    for event in live_events:  # type: ignore[union-attr]
        assert event["active_pipeline_id"] == run_id and event["label"] == "anomalous"
        assert (line["events"] / event["image"]["file"]).is_file()
    assert active(client, run_id)["metrics"]["anomalies_detected"] >= len(live_events)  # type: ignore[arg-type]

    # A new model is picked up live once it is ready (until then the row says why it waits).
    assert client.patch(f"/api/pipelines/{good['id']}", json={"model_id": line["next_model"]}).status_code == 200
    waiting = wait_for(lambda: (m := active(client, run_id)["message"]) and "is training" in m and m, 10,
                       what="the pipeline to note that the new model is not ready")
    assert line["next_model"] in waiting  # type: ignore[operator]
    with client.app.state.sessionmaker() as session:
        session.get(Model, uuid.UUID(line["next_model"])).status = "ready"
        session.commit()
    wait_for(lambda: active(client, run_id)["message"] is None, 20, what="the model swap")
    assert line["next_model"] in runtime_status(client, run_id)["model"]["path"]  # loaded from the worker's cache
    assert active(client, run_id)["status"] == "running"

    # Capture into the dataset, with the label the operator chose.
    capture = client.post(f"/api/active-pipelines/{run_id}/capture",
                          params={"add_to_dataset": "true", "label": "normal"})
    assert capture.status_code == 201, capture.text
    shot = capture.json()
    assert shot["label"] == "anomalous" and 0.0 <= shot["anomaly_score"] <= 1.0
    assert shot["image_url"] == f"/api/captures/{shot['id']}.png" and shot["timestamp"].endswith("Z")
    image = client.get(shot["image_url"])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    media = client.get(f"/api/projects/{line['project']['id']}/media").json()
    assert [(item["id"], item["label"]) for item in media["items"]] == [(shot["media_id"], "normal")]
    assert client.get(f"/api/media/{shot['media_id']}/thumbnail").status_code == 200
    # The dataset gets the frame as the camera saw it, not the annotated one.
    dataset_png = client.get(f"/api/media/{shot['media_id']}").content
    assert dataset_png.startswith(b"\x89PNG") and dataset_png != image.content

    # A new source applies at the next start only; until then the pipeline says so.
    assert client.patch(f"/api/pipelines/{good['id']}", json={"source_id": broken["source_id"]}).status_code == 200
    wait_for(lambda: "restart" in (active(client, run_id)["message"] or ""), 10, what="the restart note")
    assert client.patch(f"/api/pipelines/{good['id']}", json={"source_id": good["source_id"]}).status_code == 200
    wait_for(lambda: active(client, run_id)["message"] is None, 10, what="the restart note to clear")

    # WebRTC through the API's signalling proxy (offer, trickled candidates), frames from the pipeline.
    def offer(description: dict) -> dict:
        response = client.post("/api/webrtc/offer", json={"pipeline_id": run_id, **description})
        assert response.status_code == 200, response.text
        assert response.json()["type"] == "answer"
        return response.json()

    def candidate(message: dict) -> dict:
        response = client.post("/api/webrtc/candidate", json={"pipeline_id": run_id, **message})
        assert response.status_code == 200, response.text
        return response.json()

    frames = watch(offer, count=3, timeout=30, candidate=candidate)
    assert len(frames) == 3 and frames[0].width >= 300 and frames[0].height >= 200
    page = client.get(f"/api/active-pipelines/{run_id}/view")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    # A restarted API finds the running pipeline again (its state lives in the database and Prefect).
    with TestClient(create_app(platform.settings)) as restarted:
        assert active(restarted, run_id)["status"] == "running"
        assert restarted.post(f"/api/active-pipelines/{run_id}/capture").status_code == 201

    # Stop: the run is cancelled, the pipeline flushes and ends stopped within seconds.
    asked = time.monotonic()
    assert client.delete(f"/api/active-pipelines/{run_id}").status_code == 204
    assert active(client, run_id)["status"] in ("stopping", "stopped")
    stopped = wait_status(client, run_id, {"stopped", "failed"}, STOP_TIMEOUT_S)
    took = time.monotonic() - asked
    assert stopped["status"] == "stopped" and stopped["message"] is None, stopped
    assert stopped["stopped_at"] is not None and took < STOP_TIMEOUT_S
    wait_for(lambda: client.get(f"/api/jobs/{stopped['job_id']}").json()["status"] == "cancelled", 30,
             what="the flow run to be cancelled")
    assert client.post(f"/api/active-pipelines/{run_id}/capture").status_code == 409
    assert client.delete(f"/api/active-pipelines/{run_id}").status_code == 409
    listed = {item["id"]: item["status"] for item in client.get("/api/active-pipelines").json()}
    assert listed[run_id] == "stopped" and listed[failing] == "failed"
    print(f"stopped {took:.1f} s after DELETE; processed {stopped['metrics']['frames_processed']} frames")

    # Started again, then its process dies: the pipeline shows failed (not running), and can start again.
    again = client.post("/api/active-pipelines", json={"pipeline_id": good["id"]})
    assert again.status_code == 201, again.text
    rerun = again.json()["id"]
    assert wait_status(client, rerun, {"running", "failed", "stopped"}, START_TIMEOUT_S)["status"] == "running"
    flow_process(client, rerun).kill()
    crashed = wait_status(client, rerun, {"failed", "stopped"}, 30)
    assert crashed["status"] == "failed" and crashed["message"], crashed
    assert client.post(f"/api/active-pipelines/{rerun}/capture").status_code == 409
    assert client.delete(f"/api/pipelines/{good['id']}").status_code == 204
