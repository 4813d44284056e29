"""Automatic model selection on the real platform (Prefect, MLflow, storage): `"architecture": "auto"`
trains every candidate on one snapshot, scores each IR on the same evaluation items, keeps one model."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

from infra.database.engine import session_scope
from infra.database.models import Model
from infra.model_files import model_prefix
from infra.orchestration import Orchestrator, prefect_api_url
from infra.tracking import tracking_uri
from tests.integration.selection_fixtures import CANDIDATES
from tests.platform_fixtures import Platform

pytest_plugins = ["tests.integration.selection_fixtures"]
pytestmark = pytest.mark.slow


def test_auto_keeps_one_model_and_says_why(platform: Platform, platform_client, auto_trained) -> None:
    client = platform_client
    print(f"automatic selection of 2 candidates: {auto_trained['seconds']:.1f} s")
    model = client.get(f"/api/models/{auto_trained['model_id']}").json()
    metrics = model["metrics"]
    assert model["status"] == "ready" and model["architecture"] == "padim"
    candidates = metrics["candidates"]
    assert [(item["architecture"], item["parameters"]["backbone"]) for item in candidates] == [
        (c["architecture"], c["parameters"]["backbone"]) for c in CANDIDATES]
    assert all(item["status"] == "trained" and 0 <= item["image_auroc"] <= 1 and item["seconds"] > 0
               for item in candidates), candidates
    selection = metrics["selection"]
    chosen = candidates[selection["chosen_index"]]
    # The model is the chosen candidate: its resolved parameters, and the selection names it and the rule.
    assert model["parameters"]["backbone"] == chosen["parameters"]["backbone"]
    assert model["parameters"]["n_features"] == chosen["parameters"]["n_features"]
    assert selection["decision_metric"] == "image_auroc" and chosen["parameters"]["backbone"] in selection["chosen"]
    assert chosen["parameters"]["backbone"] in selection["reason"] and selection["eval_images"] >= 8
    best = max(range(2), key=lambda i: (candidates[i]["image_auroc"], -i))
    if selection["chosen_index"] != best:  # a cheaper one within noise: the rule says so
        assert "within one standard error" in selection["reason"] and selection["standard_error"] is not None
    # The job carries the same list (what the console shows while and after it runs).
    assert auto_trained["job"]["metrics"]["candidates"] == candidates
    assert auto_trained["job"]["metrics"]["selection"]["reason"] == selection["reason"]


def test_each_candidate_is_a_task_and_a_nested_mlflow_run(platform: Platform, platform_client, auto_trained) -> None:
    from mlflow import MlflowClient

    model = platform_client.get(f"/api/models/{auto_trained['model_id']}").json()
    orchestrator = Orchestrator(prefect_api_url(platform.settings))
    try:
        tasks = orchestrator.prefect.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[uuid.UUID(auto_trained["job"]["id"])])))
    finally:
        orchestrator.close()
    names = {task.name.rsplit("-", 1)[0] for task in tasks}
    assert {"candidate 1 · padim · mobilenetv2_100", "candidate 2 · padim · tf_efficientnet_lite0"} <= names, names

    mlflow = MlflowClient(tracking_uri(platform.settings))
    parent = mlflow.get_run(model["mlflow_run_id"])
    children = mlflow.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2
    chosen = model["metrics"]["candidates"][model["metrics"]["selection"]["chosen_index"]]
    by_id = {run.info.run_id: run for run in children}
    assert by_id[chosen["mlflow_run_id"]].data.tags["geti_inspect.candidate.chosen"] == "true"
    assert sorted(run.data.tags["geti_inspect.candidate.chosen"] for run in children) == ["false", "true"]
    assert all(run.data.metrics["eval_image_auroc"] == pytest.approx(
        next(c["image_auroc"] for c in model["metrics"]["candidates"] if c["mlflow_run_id"] == run.info.run_id))
        for run in children)
    # Only the chosen candidate became a model: one registered version, files under this model only.
    runs = {parent.info.run_id, *by_id}
    versions = [version for version in mlflow.search_model_versions(f"name = '{model['mlflow_model_name']}'")
                if version.run_id in runs]  # other tests of the session add versions of their own
    assert [version.run_id for version in versions] == [parent.info.run_id]
    assert parent.data.tags["geti_inspect.selection.chosen"] == model["metrics"]["selection"]["chosen"]
    with session_scope(platform.settings.resolved_database_url) as session:
        models = session.query(Model).filter(Model.job_id == uuid.UUID(auto_trained["job"]["id"])).all()
    assert [row.id for row in models] == [uuid.UUID(model["id"])]
    stored = {key.removeprefix(model_prefix(model["id"])).split("/")[0]
              for key in platform_client.app.state.store.list(model_prefix(model["id"]))}
    assert stored == {"openvino", "checkpoint", "evaluation.json"}


def test_auto_refuses_bad_requests_and_creates_nothing(platform_client, auto_trained) -> None:
    client, project_id = platform_client, auto_trained["project_id"]
    before = len(client.get(f"/api/projects/{project_id}/models").json())
    for body, reason in (
            ({"architecture": "auto", "parameters": {"backbone": "resnet18"}}, "candidates, not parameters"),
            ({"architecture": "padim", "candidates": CANDIDATES}, "'auto' only"),
            ({"architecture": "padim", "time_budget_s": 60}, "'auto' only"),
            ({"architecture": "auto", "candidates": [{"architecture": "cooking"}]}, "candidate 1"),
            ({"architecture": "auto", "candidates": [{"architecture": "auto"}]}, "candidate 1"),
            ({"architecture": "auto", "candidates": [CANDIDATES[0], {"architecture": "padim",
                                                                      "parameters": {"layers": ["nope"]}}]},
             "candidate 2"),
            ({"architecture": "auto", "candidates": [{"architecture": "efficientad"}]}, "cannot train here"),
            ({"architecture": "auto", "candidates": []}, "candidates"),
            ({"architecture": "auto", "time_budget_s": 0}, "time_budget_s"),
            ({"architecture": "auto", "decision_metric": "accuracy"}, "decision_metric")):
        refused = client.post(f"/api/projects/{project_id}/train", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert reason in str(refused.json()["detail"]), (body, refused.json())
    assert len(client.get(f"/api/projects/{project_id}/models").json()) == before


def test_the_schedule_retrains_with_auto(platform: Platform, platform_client, auto_trained, part_images) -> None:
    """A schedule with `"architecture": "auto"`: checked on PUT, the candidate of each run chosen by a
    search (one candidate here, to stay cheap) by pixel AUROC now that the defects carry masks, then
    compared with the champion by the same metric, both IRs on the new snapshot's items."""
    client, project_id = platform_client, auto_trained["project_id"]
    defects = client.get(f"/api/projects/{project_id}/media", params={"label": "anomalous"}).json()["items"]
    for item in defects:
        mask = next(part_images.glob(f"MT_*/Imgs/{Path(item['filename']).stem}.png")).read_bytes()
        put = client.put(f"/api/media/{item['id']}/mask", files={"file": ("mask.png", mask, "image/png")})
        assert put.status_code == 200, put.text
    path = f"/api/projects/{project_id}/training-schedule"
    base = {"cron": "0 3 * * *", "architecture": "auto", "promotion": "auto", "active": False}
    for body, reason in (({**base, "parameters": {"backbone": "resnet18"}}, "candidates, not parameters"),
                         ({**base, "architecture": "padim", "candidates": CANDIDATES}, "'auto' only"),
                         ({**base, "candidates": [{"architecture": "cooking"}]}, "candidate 1")):
        refused = client.put(path, json=body)
        assert refused.status_code == 422 and reason in str(refused.json()["detail"]), (body, refused.text)
    default = client.put(path, json=base)  # the default set: resolved when a run starts
    assert default.status_code == 200 and default.json()["candidates"] is None, default.text
    saved = client.put(path, json={**base, "candidates": CANDIDATES[:1], "decision_metric": "pixel_auroc"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["candidates"][0]["parameters"]["n_features"] == 128  # resolved on PUT

    accepted = client.post(f"{path}/run")
    assert accepted.status_code == 202, accepted.text
    from tests.platform_fixtures import wait_job

    job = wait_job(client, accepted.json()["job_id"], {"completed", "failed", "cancelled"}, 600)
    assert job["status"] == "completed", job
    metrics = job["metrics"]
    print("retraining with auto:", metrics)
    assert metrics["decision"] == "promoted" and "no champion" in metrics["reason"]
    assert metrics["decision_metric"] == "pixel_auroc" and 0 <= metrics["candidate_pixel_auroc"] <= 1
    candidate = client.get(f"/api/models/{metrics['candidate_model_id']}").json()
    assert candidate["status"] == "ready" and candidate["architecture"] == "padim" and candidate["champion"]
    assert [item["status"] for item in candidate["metrics"]["candidates"]] == ["trained"]
    assert candidate["metrics"]["selection"]["decision_metric"] == "pixel_auroc"
    assert candidate["metrics"]["pixel_metrics"] == "masks" and "pixel_auroc" in candidate["metrics"]["candidates"][0]
    assert client.delete(path).status_code == 204


def test_a_time_budget_ends_the_search_after_the_first_candidate(platform_client, auto_trained) -> None:
    """The first candidate always completes (a search ends with a model); none starts once the budget is spent."""
    from tests.platform_fixtures import wait_job

    client = platform_client
    accepted = client.post(f"/api/projects/{auto_trained['project_id']}/train", json={
        "model_name": "auto, 1 s", "architecture": "auto", "candidates": CANDIDATES, "time_budget_s": 1})
    assert accepted.status_code == 202, accepted.text
    job = wait_job(client, accepted.json()["job_id"], {"completed", "failed", "cancelled"}, 600)
    assert job["status"] == "completed", job
    first, second = job["metrics"]["candidates"]
    assert first["status"] == "trained" and second["status"] == "skipped"
    assert "time budget of 1 s was spent" in second["reason"] and second["image_auroc"] is None
    model = client.get(f"/api/models/{accepted.json()['model_id']}").json()
    assert model["parameters"]["backbone"] == "mobilenetv2_100" and model["metrics"]["selection"]["chosen_index"] == 0
