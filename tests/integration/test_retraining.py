"""The closed loop on the real platform (Prefect server + workers + MLflow): a project's training
schedule in Prefect, retraining runs that promote, keep and skip, the MLflow `champion` alias, and a
live pipeline that follows the champion and swaps models without stopping.

Images are made here: smooth synthetic textures (normal) and the same textures with a dark blotch
(anomalous). Training is PaDiM on the offline mobilenetv2_100 weights at 1/8 and 1/16 scale.
"""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import StateType
from prefect.states import Scheduled
from sqlalchemy import update

from infra.database.engine import session_scope
from infra.database.models import Media
from infra.orchestration import JobType, Orchestrator, prefect_api_url
from infra.orchestration.schedules import schedule_slug
from infra.tracking import tracking_uri
from tests.integration.media_support import upload
from tests.integration.pipeline_helpers import write_video
from tests.integration.pipeline_support import create
from tests.platform_fixtures import Platform, wait_for, wait_job

pytestmark = pytest.mark.slow

TRAINING = {"architecture": "padim", "parameters": {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "blocks.4"]}}
SCHEDULE = {"cron": "0 2 * * *", "timezone": "Europe/Berlin", **TRAINING, "promotion": "auto",
            "min_improvement": 1.0, "min_new_images": 0, "active": True}
JOB_TIMEOUT_S = 420  # snapshot + PaDiM fit + export + scoring on 2 busy cores


def texture(seed: int, defect: bool = False, size: int = 128) -> np.ndarray:
    """A smooth periodic pattern with sensor noise; a defect is a dark blotch."""
    rng = np.random.default_rng(seed)
    axis = np.linspace(0, 6 * np.pi, size)
    image = 130 + 45 * np.sin(axis)[None, :] * np.cos(axis + seed % 3)[:, None] + rng.normal(0, 5, (size, size))
    if defect:
        top, left = rng.integers(10, size - 50, 2)
        image[top:top + 36, left:left + 30] = 25
    return np.repeat(np.clip(image, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def orchestrator(platform: Platform):
    client = Orchestrator(prefect_api_url(platform.settings))
    yield client
    client.close()


def _new_project(client, name: str) -> str:
    response = client.post("/api/projects", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _schedule_in_prefect(orchestrator: Orchestrator, project_id: str):
    schedules = orchestrator.prefect.read_deployment_schedules(orchestrator.deployment_id(JobType.RETRAINING))
    return [schedule for schedule in schedules if schedule.slug == schedule_slug(project_id)]


def _schedule_runs(orchestrator: Orchestrator) -> None:
    """What Prefect's scheduler service does every minute: create the runs of the active schedules."""
    response = orchestrator.prefect.request("POST", "/deployments/{id}/schedule",
                                            path_params={"id": orchestrator.deployment_id(JobType.RETRAINING)},
                                            json={"min_runs": 3, "max_runs": 3})
    response.raise_for_status()


def _future_runs(orchestrator: Orchestrator, project_id: str) -> list:
    """Runs the project's schedule made that have not started."""
    runs = orchestrator.prefect.read_flow_runs(flow_run_filter=FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[orchestrator.deployment_id(JobType.RETRAINING)])), limit=200)
    return [run for run in runs if run.state_type == StateType.SCHEDULED and run.created_by is not None
            and run.created_by.display_value == schedule_slug(project_id)]


def test_the_schedule_is_a_prefect_schedule(platform_client, orchestrator):
    client = platform_client
    project_id = _new_project(client, "Scheduled line")
    path = f"/api/projects/{project_id}/training-schedule"
    assert client.get(path).status_code == 404
    assert client.post(f"{path}/run").status_code == 404

    # Bad input: 404 unknown project, 422 with the reason, nothing created in Prefect.
    assert client.put(f"/api/projects/{uuid.uuid4()}/training-schedule", json=SCHEDULE).status_code == 404
    for change, reason in (({"cron": "0 2 * *"}, "cron"), ({"cron": "every night"}, "cron"),
                           ({"timezone": "Mars/Olympus"}, "timezone"), ({"architecture": "cooking"}, "cooking"),
                           ({"parameters": {"colour": 1}}, "colour"), ({"promotion": "sometimes"}, "promotion"),
                           ({"min_improvement": -0.1}, "min_improvement"), ({"min_new_images": -1}, "min_new_images")):
        refused = client.put(path, json=SCHEDULE | change)
        assert refused.status_code == 422, (change, refused.text)
        assert reason in str(refused.json()["detail"]), (change, refused.json())
    assert _schedule_in_prefect(orchestrator, project_id) == []

    created = client.put(path, json=SCHEDULE)
    assert created.status_code == 200, created.text
    body = created.json()
    assert {key: body[key] for key in SCHEDULE} == SCHEDULE | {"parameters": body["parameters"]}
    assert body["parameters"]["backbone"] == "mobilenetv2_100" and body["project_id"] == project_id
    # 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer.
    assert len(body["next_runs"]) == 3 and all(run.endswith(("T01:00:00Z", "T00:00:00Z")) for run in body["next_runs"])

    [schedule] = _schedule_in_prefect(orchestrator, project_id)
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == ("0 2 * * *", "Europe/Berlin", True)
    assert schedule.parameters == {"project_id": project_id, "architecture": "padim",
                                   "parameters": body["parameters"], "promotion": "auto", "min_improvement": 1.0,
                                   "min_new_images": 0, "candidates": None, "time_budget_s": None,
                                   "decision_metric": "image_auroc"}

    # Replacing keeps one schedule, with the new settings.
    replaced = client.put(path, json=SCHEDULE | {"cron": "30 3 * * 1", "timezone": "UTC", "min_new_images": 20})
    assert replaced.status_code == 200 and replaced.json()["next_runs"][0].endswith("T03:30:00Z")
    [schedule] = _schedule_in_prefect(orchestrator, project_id)
    assert schedule.schedule.cron == "30 3 * * 1" and schedule.parameters["min_new_images"] == 20

    # Paused in the Prefect UI: its switch sends only `active`, which also wipes the parameters (facts.md).
    orchestrator.prefect.update_deployment_schedule(schedule.deployment_id, schedule.id, active=False)
    assert _schedule_in_prefect(orchestrator, project_id)[0].parameters == {}
    paused = client.get(path).json()
    assert paused["active"] is False and paused["next_runs"] == []
    assert paused["min_new_images"] == 20 and paused["parameters"] == body["parameters"]
    assert _schedule_in_prefect(orchestrator, project_id)[0].parameters["project_id"] == project_id  # put back
    assert client.put(path, json=SCHEDULE).json()["active"] is True

    # Prefect makes the schedule's runs (as its scheduler service does), tagged as retraining jobs.
    _schedule_runs(orchestrator)
    runs = _future_runs(orchestrator, project_id)
    assert len(runs) == 3 and all("job:retraining" in run.tags for run in runs)
    assert all(run.parameters["project_id"] == project_id for run in runs)

    # Paused and resumed in the Prefect UI, and nobody reads it through the API before the next run:
    # that run starts without parameters and recovers its project and settings from the schedule.
    assert client.put(path, json=SCHEDULE | {"min_new_images": 7}).status_code == 200
    for active in (False, True):
        orchestrator.prefect.update_deployment_schedule(schedule.deployment_id, schedule.id, active=active)
    _schedule_runs(orchestrator)
    runs = _future_runs(orchestrator, project_id)
    assert runs and all(run.parameters == {} for run in runs)
    orchestrator.prefect.set_flow_run_state(runs[0].id, Scheduled(scheduled_time=datetime.now(UTC)), force=True)
    job = wait_job(client, str(runs[0].id), {"completed", "failed"}, timeout=180)
    assert job["status"] == "completed" and job["metrics"]["decision"] == "skipped", job
    assert "needs 7" in job["metrics"]["reason"] and job["project_id"] == project_id
    assert orchestrator.prefect.read_flow_run(runs[0].id).name == "retrain · Scheduled line"
    listed = client.get(f"/api/projects/{project_id}/jobs", params={"type": "retraining"}).json()
    assert [item["id"] for item in listed] == [job["id"]]

    assert client.delete(path).status_code == 204
    assert _schedule_in_prefect(orchestrator, project_id) == [] and _future_runs(orchestrator, project_id) == []
    assert client.get(path).status_code == 404 and client.delete(path).status_code == 404


@pytest.fixture(scope="module")
def line(platform: Platform, platform_client) -> dict:
    """A project with 12 normal and 4 anomalous images; 3 normal and all anomalous ones are `eval`."""
    client = platform_client
    project_id = _new_project(client, f"Retrain line {uuid.uuid4().hex[:4]}")
    normal = [(f"good-{seed:02d}.png", png(texture(seed))) for seed in range(12)]
    anomalous = [(f"bad-{seed:02d}.png", png(texture(100 + seed, defect=True))) for seed in range(4)]
    assert upload(client, project_id, normal).status_code == 201
    assert upload(client, project_id, anomalous, label="anomalous").status_code == 201
    held_out = [name for name, _ in normal[:3]]
    with session_scope(platform.settings.resolved_database_url) as session:
        session.execute(update(Media).where(Media.project_id == uuid.UUID(project_id))
                        .values(split="train"))
        session.execute(update(Media).where(Media.project_id == uuid.UUID(project_id),
                                            Media.filename.in_(held_out) | (Media.label == "anomalous"))
                        .values(split="eval"))
    return {"project_id": project_id}


def _run_now(client, project_id: str) -> dict:
    accepted = client.post(f"/api/projects/{project_id}/training-schedule/run")
    assert accepted.status_code == 202, accepted.text
    job = wait_job(client, accepted.json()["job_id"], {"completed", "failed", "cancelled"}, timeout=JOB_TIMEOUT_S)
    assert job["status"] == "completed", job
    assert job["type"] == "retraining" and job["project_id"] == project_id
    print(f"retraining {job['metrics']['decision']}: {job['metrics']}")
    return job


def _champion_alias_version(platform: Platform, model: dict) -> str:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri(platform.settings)).get_model_version_by_alias(
        model["mlflow_model_name"], "champion").version


@pytest.fixture(scope="module")
def retrained(platform: Platform, platform_client, line) -> dict:
    """Two retraining runs of `line`, read as they ended: the first promotes (no champion yet), the second keeps
    the champion (min_improvement 1.0). The models and what the API and MLflow said right after each run."""
    client, project_id = platform_client, line["project_id"]
    # min_improvement 1.0: only a project without a champion gets a new one.
    path = f"/api/projects/{project_id}/training-schedule"
    assert client.put(path, json=SCHEDULE | {"active": False}).status_code == 200
    first = _run_now(client, project_id)["metrics"]
    champion = client.get(f"/api/models/{first['candidate_model_id']}").json()
    alias_after_first = _champion_alias_version(platform, champion)
    second_job = _run_now(client, project_id)
    second = second_job["metrics"]
    candidate = client.get(f"/api/models/{second['candidate_model_id']}").json()
    return {"first": first, "second_job": second_job, "champion": champion, "candidate": candidate,
            "alias_after_first": alias_after_first, "alias_after_second": _champion_alias_version(platform, champion)}


def test_retraining_promotes_keeps_and_skips(platform: Platform, platform_client, orchestrator, line, retrained):
    client, project_id = platform_client, line["project_id"]
    path = f"/api/projects/{project_id}/training-schedule"
    first, champion = retrained["first"], retrained["champion"]
    assert first["decision"] == "promoted" and "no champion" in first["reason"]
    assert first["champion_model_id"] is None and first["champion_image_auroc"] is None
    assert first["eval_images"] == 7 and 0.0 <= first["candidate_image_auroc"] <= 1.0
    assert champion["status"] == "ready" and champion["champion"] is True
    assert retrained["alias_after_first"] == champion["mlflow_model_version"]

    second_job, candidate = retrained["second_job"], retrained["candidate"]
    second = second_job["metrics"]
    assert second["decision"] == "kept" and second["champion_model_id"] == champion["id"]
    assert second["eval_images"] == 7 and second["candidate_image_auroc"] is not None
    assert second["champion_image_auroc"] == pytest.approx(first["candidate_image_auroc"], abs=1e-6)  # same images
    assert candidate["status"] == "ready" and candidate["champion"] is False
    assert retrained["alias_after_second"] == champion["mlflow_model_version"]

    # Visible in Prefect and MLflow: the run's name, its steps, the decision on the candidate's run.
    run = orchestrator.prefect.read_flow_run(uuid.UUID(second_job["id"]))
    assert run.name.startswith("retrain · Retrain line")
    steps = {task.name.rsplit("-", 1)[0] for task in orchestrator.prefect.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id])))}
    assert {"snapshot-media", "count-new-images", "create-candidate", "score-on-eval-set",
            "record-decision"} <= steps, steps
    trainings = client.get(f"/api/projects/{project_id}/jobs", params={"type": "training"}).json()
    assert len(trainings) == 2 and {job["status"] for job in trainings} == {"completed"}
    assert len(client.get(f"/api/projects/{project_id}/jobs", params={"type": "retraining"}).json()) == 2
    from mlflow import MlflowClient

    tags = MlflowClient(tracking_uri(platform.settings)).get_run(candidate["mlflow_run_id"]).data
    assert tags.tags["geti_inspect.retraining.decision"] == "kept"
    assert tags.metrics["retraining.champion_image_auroc"] == pytest.approx(second["champion_image_auroc"])
    assert tags.metrics["retraining.candidate_image_auroc"] == pytest.approx(second["candidate_image_auroc"])

    models_before = len(client.get(f"/api/projects/{project_id}/models").json())
    assert client.put(path, json=SCHEDULE | {"active": False, "min_new_images": 5}).status_code == 200
    skipped = _run_now(client, project_id)["metrics"]
    assert skipped["decision"] == "skipped" and "0 new images" in skipped["reason"], skipped
    assert skipped["candidate_model_id"] is None
    assert len(client.get(f"/api/projects/{project_id}/models").json()) == models_before
    assert client.delete(path).status_code == 204


def test_a_live_pipeline_follows_the_promoted_champion(platform: Platform, platform_client, line, retrained,
                                                      tmp_path: Path):
    client, project_id = platform_client, line["project_id"]
    champion, candidate = retrained["champion"], retrained["candidate"]
    frames = [texture(seed)[:, :, ::-1].copy() for seed in range(20)]
    video = write_video(tmp_path / "line.avi", frames, fps=10)
    source = create(client, project_id, "sources",
                    {"type": "video_file", "name": "Line", "config": {"path": str(video), "loop": True}})
    sink = create(client, project_id, "sinks", {"type": "filesystem", "name": "Folder",
                                                "config": {"output_dir": str(tmp_path / "events")}})
    pipeline = create(client, project_id, "pipelines", {"name": "Follower", "follow_champion": True,
                                                        "source_id": source["id"], "sink_id": sink["id"],
                                                        "config": {"fps": 10}})
    assert pipeline["model_id"] == champion["id"]
    started = client.post("/api/active-pipelines", json={"pipeline_id": pipeline["id"]})
    assert started.status_code == 201, started.text
    active_id = started.json()["id"]

    def active() -> dict:
        return client.get(f"/api/active-pipelines/{active_id}").json()

    try:
        before = wait_for(lambda: (row := active())["status"] == "running" and row["metrics"]["frames_processed"] > 5
                          and row, 120, what="the follower to process frames")
        assert before["model_id"] == champion["id"]

        promoted = client.post(f"/api/models/{candidate['id']}/promote")
        assert promoted.status_code == 200 and promoted.json()["champion"] is True
        assert _champion_alias_version(platform, candidate) == candidate["mlflow_model_version"]
        assert client.get(f"/api/models/{champion['id']}").json()["champion"] is False
        swap_started = time.monotonic()
        swapped = wait_for(lambda: (row := active())["model_id"] == candidate["id"] and row, 30,
                           interval=0.25, what="the follower to run the new champion")
        print(f"follower swapped models {time.monotonic() - swap_started:.1f} s after the promotion")
        after = wait_for(lambda: (row := active())["metrics"]["frames_processed"]
                         > swapped["metrics"]["frames_processed"] + 5 and row, 30, what="frames after the swap")
        assert after["status"] == "running" and after["message"] is None
        assert after["metrics"]["frames_dropped"] == before["metrics"]["frames_dropped"]
    finally:
        client.delete(f"/api/active-pipelines/{active_id}")
        wait_for(lambda: active()["status"] in ("stopped", "failed"), 30, what="the follower to stop")
