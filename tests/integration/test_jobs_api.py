"""Jobs through the HTTP API against a real Prefect server, worker and MLflow (session platform)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest

from tests.conftest import png_bytes
from tests.integration.media_support import part_files, upload
from tests.platform_fixtures import wait_epoch, wait_for, wait_job

pytestmark = pytest.mark.slow


@pytest.fixture
def project(platform_client) -> dict:
    response = platform_client.post("/api/projects", json={"name": f"jobs {uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    return response.json()


def _images(count: int, offset: int = 0) -> list[tuple[str, bytes]]:
    return [(f"img{offset + index}.png", png_bytes(color=(offset + index, 90, 200))) for index in range(count)]


def test_snapshot_job_end_to_end(platform_client, project):
    client, project_id = platform_client, project["id"]
    assert upload(client, project_id, _images(3)).status_code == 201
    assert upload(client, project_id, _images(2, offset=10), label="anomalous").status_code == 201

    created = client.post(f"/api/projects/{project_id}/snapshots", json={"name": "Training set v1"})
    assert created.status_code == 201, created.text
    snapshot = created.json()
    assert snapshot["status"] == "pending" and snapshot["media_count"] is None
    job_id = snapshot["job_id"]

    job = wait_job(client, job_id, {"completed", "failed"})
    assert job["status"] == "completed", job
    assert job["type"] == "snapshot" and job["project_id"] == project_id and job["progress"] == 1.0
    assert job["metrics"]["media_count"] == 5 and job["error"] is None
    assert job["created_at"].endswith("Z") and job["started_at"] and job["finished_at"]

    ready = client.get(f"/api/snapshots/{snapshot['id']}").json()
    assert ready["status"] == "ready" and ready["media_count"] == 5

    listed = client.get(f"/api/projects/{project_id}/jobs").json()
    assert [item["id"] for item in listed] == [job_id]
    assert client.get(f"/api/projects/{project_id}/jobs", params={"type": "snapshot", "status": "completed"}).json()
    assert client.get(f"/api/projects/{project_id}/jobs", params={"type": "training"}).json() == []
    assert client.get(f"/api/projects/{project_id}/jobs", params={"status": "running"}).json() == []


def test_job_errors(platform_client, project):
    client = platform_client
    assert client.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
    assert client.delete(f"/api/jobs/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/api/projects/{uuid.uuid4()}/jobs").status_code == 404
    for params in ({"type": "cooking"}, {"status": "sleeping"}):
        response = client.get(f"/api/projects/{project['id']}/jobs", params=params)
        assert response.status_code == 422 and "detail" in response.json()
    assert client.post(f"/api/projects/{uuid.uuid4()}/snapshots", json={"name": "x"}).status_code == 404
    assert client.post(f"/api/projects/{project['id']}/snapshots", json={"name": ""}).status_code == 422


def test_job_list_pages_newest_first_with_each_jobs_metrics(platform, platform_client, project):
    """Finished runs made directly in the platform's Prefect (no worker needed to finish them)."""
    from prefect import flow
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Completed

    @flow(name="paged-job")
    def paged_job() -> None:
        return None

    created = []
    # The API URL in Prefect's settings too, else creating the run starts a temporary server.
    with temporary_settings({PREFECT_API_URL: platform.stack.prefect_api_url}), \
            SyncPrefectClient(platform.stack.prefect_api_url) as prefect:
        for index in range(7):
            run = prefect.create_flow_run(paged_job, tags=[f"project:{project['id']}", "job:export"], state=Completed())
            prefect.create_artifact(ArtifactCreate(type="table", flow_run_id=run.id,
                                                   data=json.dumps([{"index": index}])))
            created.append(str(run.id))
    client, path = platform_client, f"/api/projects/{project['id']}/jobs"

    # Made outside the API: listed once the jobs index has followed Prefect (its poller runs about every second).
    everything = wait_for(lambda: (jobs := client.get(path, params={"limit": 200}).json()) and len(jobs) == 7 and jobs,
                          30, 0.2, "the runs made in Prefect to be listed")
    assert [job["id"] for job in everything] == created[::-1]  # newest first
    assert [job["metrics"] for job in everything] == [{"index": index} for index in range(6, -1, -1)]
    pages = [client.get(path, params={"limit": 3, "offset": offset}).json() for offset in (0, 3, 6, 9)]
    assert [len(page) for page in pages] == [3, 3, 1, 0]
    assert [job for page in pages for job in page] == everything  # again, from remembered metrics
    assert len(client.get(path).json()) == 7  # default page: 20
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}):
        response = client.get(path, params=params)
        assert response.status_code == 422 and "detail" in response.json()


# -- training jobs: validation, failure, cancellation, a crashed worker ----------------------------

# STFPM trains for many epochs: slow enough to cancel or crash mid-training on purpose.
SLOW_TRAINING = {"architecture": "stfpm", "parameters": {"backbone": "mobilenetv2_100", "max_epochs": 300}}


@pytest.fixture(scope="module")
def parts_project(platform_client, part_images) -> dict:
    """A project with 12 normal and 4 anomalous synthetic parts, and a ready snapshot of them."""
    client = platform_client
    project = client.post("/api/projects", json={"name": "Parts jobs"}).json()
    assert upload(client, project["id"], part_files(part_images, "Free", 12)).status_code == 201
    assert upload(client, project["id"], part_files(part_images, "Crack", 4), label="anomalous").status_code == 201
    snapshot = client.post(f"/api/projects/{project['id']}/snapshots", json={"name": "all"}).json()
    assert wait_job(client, snapshot["job_id"], {"completed", "failed"})["status"] == "completed"
    return {**project, "snapshot_id": snapshot["id"]}


def _train(client, project_id: str, **body) -> dict:
    response = client.post(f"/api/projects/{project_id}/train", json={"model_name": "m", **body})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "pending" and accepted["job_id"]
    model = client.get(f"/api/models/{accepted['model_id']}").json()
    assert model["status"] == "training" and model["job_id"] == accepted["job_id"]
    return accepted


def _model_leftovers(platform, model_id: str) -> list[str]:
    """Stored files and live MLflow runs/versions a model left behind."""
    from mlflow import MlflowClient

    from infra.tracking import tracking_uri

    left = list(platform_store(platform).list(f"models/{model_id}/"))
    mlflow = MlflowClient(tracking_uri(platform.settings))
    runs = mlflow.search_runs(experiment_ids=[e.experiment_id for e in mlflow.search_experiments()],
                              filter_string=f"tags.`geti_inspect.model_id` = '{model_id}'")
    left += [f"mlflow run {run.info.run_id}" for run in runs]
    left += [f"mlflow version {version.version}" for run in runs
             for version in mlflow.search_model_versions(f"run_id = '{run.info.run_id}'")]
    return left


def platform_store(platform):
    from infra.storage import build_store

    return build_store(platform.settings)


def test_training_is_refused_upfront(platform_client, parts_project, project):
    client, project_id = platform_client, parts_project["id"]
    cases = [
        ({"architecture": "nonsense"}, 422, "unknown architecture"),
        ({"architecture": "padim", "parameters": {"colour": 1}}, 422, "unknown parameter"),
        ({"architecture": "padim", "parameters": {"max_epochs": "many"}}, 422, "max_epochs"),
        ({"architecture": "padim", "snapshot_id": str(uuid.uuid4())}, 404, "not found"),
    ]
    for body, status, text in cases:
        response = client.post(f"/api/projects/{project_id}/train", json=body)
        assert response.status_code == status and text in response.json()["detail"], (body, response.text)
    # Too few normal images: the (empty) project of the `project` fixture.
    response = client.post(f"/api/projects/{project['id']}/train", json={"architecture": "padim"})
    assert response.status_code == 422 and "at least 4 normal images" in response.json()["detail"]
    assert client.post(f"/api/projects/{uuid.uuid4()}/train", json={"architecture": "padim"}).status_code == 404
    assert client.get(f"/api/projects/{project_id}/models").json() == [], "a refused request left a model row"


def test_failing_training_ends_failed_with_the_reason(platform, platform_client, part_images):
    client = platform_client
    project = client.post("/api/projects", json={"name": "storage loss"}).json()
    # Other parts than parts_project's: blobs are shared by content and one is about to be lost.
    assert upload(client, project["id"], part_files(part_images, "Free", 18)[12:]).status_code == 201
    snapshot = client.post(f"/api/projects/{project['id']}/snapshots", json={"name": "s"}).json()
    assert wait_job(client, snapshot["job_id"], {"completed", "failed"})["status"] == "completed"
    # The bytes of one snapshot image are lost from object storage.
    from infra.database.engine import session_scope
    from infra.database.models import SnapshotItem
    from infra.storage import blob_key

    with session_scope(platform.settings.resolved_database_url) as session:
        sha = session.query(SnapshotItem.sha256).filter_by(snapshot_id=uuid.UUID(snapshot["id"])).first()[0]
    platform_store(platform).delete(blob_key(sha))

    accepted = _train(client, project["id"], architecture="padim", snapshot_id=snapshot["id"],
                      parameters={"backbone": "mobilenetv2_100"})
    job = wait_job(client, accepted["job_id"], {"completed", "failed", "cancelled"})
    assert job["status"] == "failed" and "missing from storage" in job["error"], job
    model = client.get(f"/api/models/{accepted['model_id']}").json()
    assert model["status"] == "failed" and "missing from storage" in model["error"]
    assert _model_leftovers(platform, accepted["model_id"]) == []


def _wait_training(client, job_id: str) -> dict:
    return wait_epoch(client, job_id)


def test_cancel_a_running_training(platform, platform_client, parts_project):
    client = platform_client
    accepted = _train(client, parts_project["id"], snapshot_id=parts_project["snapshot_id"], **SLOW_TRAINING)
    running = _wait_training(client, accepted["job_id"])
    assert 0 < running["progress"] < 1 and running["started_at"]

    cancelled_at = time.monotonic()
    assert client.delete(f"/api/jobs/{accepted['job_id']}").status_code == 204
    assert client.get(f"/api/models/{accepted['model_id']}").json()["status"] == "failed"
    job = wait_job(client, accepted["job_id"], {"cancelled", "failed", "completed"}, timeout=30)
    print(f"cancelled {time.monotonic() - cancelled_at:.1f} s after DELETE")
    assert job["status"] == "cancelled" and job["finished_at"], job["message"]
    model = client.get(f"/api/models/{accepted['model_id']}").json()
    assert model["status"] == "failed" and model["error"] == "cancelled"
    wait_for(lambda: _model_leftovers(platform, accepted["model_id"]) == [], 15, what="cleanup of the model")
    assert client.delete(f"/api/jobs/{accepted['job_id']}").status_code == 409
    listed = client.get(f"/api/projects/{parts_project['id']}/jobs", params={"status": "cancelled"}).json()
    assert accepted["job_id"] in [item["id"] for item in listed]


def test_deleting_a_model_in_training_cancels_its_job(platform, platform_client, parts_project):
    client = platform_client
    accepted = _train(client, parts_project["id"], snapshot_id=parts_project["snapshot_id"], **SLOW_TRAINING)
    _wait_training(client, accepted["job_id"])

    assert client.delete(f"/api/models/{accepted['model_id']}").status_code == 204
    assert client.get(f"/api/models/{accepted['model_id']}").status_code == 404
    job = wait_job(client, accepted["job_id"], {"cancelled", "failed", "completed"}, timeout=30)
    assert job["status"] == "cancelled", job
    wait_for(lambda: _model_leftovers(platform, accepted["model_id"]) == [], 15, what="cleanup of the model")


def test_killed_worker_fails_the_job(platform, platform_client, parts_project):
    """The worker and its flow process die (a lost machine): heartbeats stop, the job ends failed."""
    client = platform_client
    accepted = _train(client, parts_project["id"], snapshot_id=parts_project["snapshot_id"], **SLOW_TRAINING)
    _wait_training(client, accepted["job_id"])
    worker = platform.stack.workers["training"]
    flow_processes = worker.descendants()
    assert flow_processes, "the flow process should run under the worker"
    os.killpg(worker.pid, signal.SIGKILL)
    for process in flow_processes:
        process.kill()
    killed_at = time.monotonic()

    job = wait_job(client, accepted["job_id"], {"failed", "completed", "cancelled"}, timeout=150)
    print(f"job failed {time.monotonic() - killed_at:.0f} s after the kill")
    assert job["status"] == "failed" and "heartbeat" in job["error"], job
    model = client.get(f"/api/models/{accepted['model_id']}").json()
    assert model["status"] == "failed" and "heartbeat" in model["error"]
    # The supervisor restarted the worker: the next job runs.
    wait_for(lambda: worker.alive, 30, what="the worker to be restarted")
    assert platform_client.get("/api/health").json()["components"]["worker:training"]["ok"]
