"""Prefect, MLflow and the API's links name things as the user does: project and model names.

The session's real PaDiM training (`trained_model`, synthetic parts, small backbone) and a snapshot
job of its project, then: flow run names, the training's task list and markdown report, the MLflow
experiment/run/version, the links in API responses, and the experiment following a project rename.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)

from infra.orchestration.client import prefect_api_url
from infra.tracking import PROJECT_TAG, project_experiment, tracking_uri
from tests.platform_fixtures import TrainedModel, wait_for, wait_job

pytestmark = pytest.mark.slow

TRAINING_STEPS = ["load snapshot", "materialise data", "start MLflow run", "prepare model", "fit", "evaluate",
                  "export IR", "verify IR", "score eval set", "upload files", "register in MLflow"]


@pytest.fixture(scope="module")
def trained(platform_client, trained_model: TrainedModel) -> dict:
    """The session's trained model, and a snapshot job of its project (the training made its snapshot itself)."""
    client = platform_client
    project = client.get(f"/api/projects/{trained_model.project['id']}").json()
    snapshot = client.post(f"/api/projects/{project['id']}/snapshots", json={"name": "s1"}).json()
    assert wait_job(client, snapshot["job_id"], {"completed", "failed"}, 120)["status"] == "completed"
    return {"project": project, "snapshot": snapshot, "job": trained_model.job, "model_id": trained_model.model_id,
            "model_name": trained_model.model_name, "training_snapshot_id": trained_model.accepted["snapshot_id"],
            "trained_model": trained_model}


def test_prefect_names_runs_and_shows_the_training_steps(platform, platform_client, trained) -> None:
    job_id = trained["job"]["id"]
    with SyncPrefectClient(prefect_api_url(platform.settings)) as prefect:
        project_name, model_name = trained["project"]["name"], trained["model_name"]
        assert prefect.read_flow_run(uuid.UUID(trained["snapshot"]["job_id"])).name == f"snapshot · {project_name}"
        assert prefect.read_flow_run(uuid.UUID(job_id)).name == f"train · {model_name} · {project_name}"
        tasks = prefect.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[uuid.UUID(job_id)])))
        ordered = sorted(tasks, key=lambda run: run.start_time)
        assert [run.name.rsplit("-", 1)[0] for run in ordered] == TRAINING_STEPS
        assert all(run.state_type.value == "COMPLETED" for run in tasks)
        artifacts = prefect.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(job_id)])))
        (report,) = [artifact for artifact in artifacts if artifact.type == "markdown"]
    model = platform_client.get(f"/api/models/{trained['model_id']}").json()
    assert report.key == f"training-{trained['model_id']}"
    assert "| image_auroc |" in report.data and "| backbone | mobilenetv2_100 |" in report.data
    # The flow has no request host: links use the API's and UIs' configured (here: loopback) addresses.
    settings = platform.settings
    assert f"](http://127.0.0.1:{settings.mlflow_port}/#/runs/{model['mlflow_run_id']})" in report.data
    assert f"](http://127.0.0.1:{settings.port}/api/models/{model['id']})" in report.data

    exported = trained["trained_model"].first_export_answer(platform_client, "openvino")
    assert exported.status_code == 202
    export_job = wait_job(platform_client, exported.json()["job_id"], {"completed", "failed"}, 300)
    assert export_job["status"] == "completed"
    with SyncPrefectClient(prefect_api_url(platform.settings)) as prefect:
        assert prefect.read_flow_run(uuid.UUID(export_job["id"])).name == f"export · openvino · {model_name}"


def test_mlflow_reads_like_the_project(platform, platform_client, trained) -> None:
    from mlflow import MlflowClient

    mlflow = MlflowClient(tracking_uri(platform.settings))
    model = platform_client.get(f"/api/models/{trained['model_id']}").json()
    run = mlflow.get_run(model["mlflow_run_id"])
    experiment = mlflow.get_experiment(run.info.experiment_id)
    project_name, model_name = trained["project"]["name"], trained["model_name"]
    assert experiment.name == project_name and experiment.tags[PROJECT_TAG] == trained["project"]["id"]
    assert run.info.run_name == model_name
    assert {key: run.data.tags[key] for key in (PROJECT_TAG, "geti_inspect.model_id", "geti_inspect.snapshot_id",
                                                "geti_inspect.job_id")} == {
        PROJECT_TAG: trained["project"]["id"], "geti_inspect.model_id": model["id"],
        "geti_inspect.snapshot_id": trained["training_snapshot_id"], "geti_inspect.job_id": trained["job"]["id"]}
    version = mlflow.get_model_version(model["mlflow_model_name"], model["mlflow_model_version"])
    auroc = model["metrics"]["image_auroc"]
    trained_on = f"{model['metrics']['train_images']:.0f} training images"
    counted = f"({trained['trained_model'].normal_images} good, {trained['trained_model'].anomalous_images} anomalous"
    for words in ("padim", "mobilenetv2_100", repr(model_name), repr(project_name), trained_on, counted,
                  f"image AUROC {auroc:.3f}"):
        assert words in version.description, (words, version.description)

    # A second project of the same name gets a distinct experiment; a rename follows the project.
    twin = platform_client.post("/api/projects", json={"name": project_name}).json()
    twin_experiment = mlflow.get_experiment(project_experiment(mlflow, twin["id"], project_name))
    assert twin_experiment.name == f"{project_name} ({twin['id'][:8]})"
    try:
        renamed = platform_client.patch(f"/api/projects/{trained['project']['id']}", json={"name": "Line 3 east"})
        assert renamed.status_code == 200
        wait_for(lambda: mlflow.get_experiment(experiment.experiment_id).name == "Line 3 east", 20, 0.2,
                 "the experiment to follow the rename")
    finally:  # the project is the session's: give it its name back
        platform_client.patch(f"/api/projects/{trained['project']['id']}", json={"name": project_name})


def test_links_open_the_right_pages(platform, platform_client, trained) -> None:
    model = platform_client.get(f"/api/models/{trained['model_id']}").json()
    job = platform_client.get(f"/api/jobs/{trained['job']['id']}").json()
    prefect_ui = prefect_api_url(platform.settings).removesuffix("/api")
    mlflow_ui = tracking_uri(platform.settings)
    # TestClient's host is "testserver": the supervised ports on that host.
    assert job["links"] == {"prefect_flow_run": f"http://testserver:{platform.settings.prefect_port}"
                                                f"/runs/flow-run/{job['id']}"}
    assert model["links"] == {"mlflow_run": f"http://testserver:{platform.settings.mlflow_port}/#/runs/"
                                            f"{model['mlflow_run_id']}",
                              "prefect_flow_run": job["links"]["prefect_flow_run"]}
    listed = platform_client.get(f"/api/projects/{trained['project']['id']}/jobs").json()
    assert {entry["links"]["prefect_flow_run"].rsplit("/", 1)[1] for entry in listed} == {
        trained["job"]["id"], trained["snapshot"]["job_id"], *[entry["id"] for entry in listed]}
    # The pages behind them answer on the real UIs (loopback) as they do to a browser's navigation.
    for url in (f"{prefect_ui}/runs/flow-run/{job['id']}", f"{mlflow_ui}/"):
        assert httpx.get(url, headers={"Accept": "text/html"}, timeout=10).status_code == 200, url
