"""`GET /models/{id}/evaluation`: what a trained model scored on each evaluation item, read back as
ROC, histogram, thresholds and wrong verdicts; and pipelines that take the model's threshold."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from infra.database.engine import session_scope
from infra.database.models import SnapshotItem
from infra.evaluation import load_record
from tests.integration.pipeline_support import create_pipeline, insert_model

pytest_plugins = ["tests.integration.selection_fixtures"]


@pytest.mark.slow
def test_the_evaluation_of_a_trained_model(platform, platform_client, auto_trained) -> None:
    client, model_id = platform_client, auto_trained["model_id"]
    model = client.get(f"/api/models/{model_id}").json()
    response = client.get(f"/api/models/{model_id}/evaluation")
    assert response.status_code == 200, response.text
    evaluation = response.json()
    items = evaluation["items"]
    # The snapshot's evaluation items, each scored by the stored IR; the same scores chose the model.
    with session_scope(platform.settings.resolved_database_url) as session:
        frozen = session.query(SnapshotItem).filter(SnapshotItem.snapshot_id == uuid.UUID(model["snapshot_id"])).all()
    expected = {row.id: row for row in frozen if row.split == "eval" or row.label == "anomalous"}
    assert {item["snapshot_item_id"] for item in items} == set(expected)
    assert all(item["label"] == expected[item["snapshot_item_id"]].label and 0 <= item["score"] <= 1
               and item["media_id"] == str(expected[item["snapshot_item_id"]].media_id) for item in items)
    assert evaluation["anomalous_count"] == 4 and evaluation["normal_count"] == len(items) - 4 >= 4
    assert evaluation["score_source"] == "openvino" and evaluation["snapshot_id"] == model["snapshot_id"]
    chosen = model["metrics"]["candidates"][model["metrics"]["selection"]["chosen_index"]]
    assert evaluation["image_auroc"] == pytest.approx(chosen["image_auroc"])
    print("evaluation:", {key: evaluation[key] for key in ("image_auroc", "threshold", "f1_optimal_threshold")},
          "at threshold:", {key: value for key, value in evaluation["at_threshold"].items()})

    # The model's threshold (anomalib's learnt one, 0.5 of the normalised score), and the verdicts at it.
    assert evaluation["threshold"] == model["metrics"]["threshold"] == pytest.approx(0.5)
    verdicts = evaluation["at_threshold"]
    wrong_normal = {item["snapshot_item_id"] for item in items if item["label"] == "normal" and item["score"] >= 0.5}
    missed = {item["snapshot_item_id"] for item in items if item["label"] == "anomalous" and item["score"] < 0.5}
    assert {ref["snapshot_item_id"] for ref in verdicts["false_positives"]} == wrong_normal
    assert {ref["snapshot_item_id"] for ref in verdicts["false_negatives"]} == missed
    assert verdicts["true_positives"] == 4 - len(missed)
    assert 0 <= evaluation["f1_optimal_threshold"] <= 1
    roc = evaluation["roc"]
    assert roc[0] == {"threshold": None, "fpr": 0.0, "tpr": 0.0} and (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    histogram = evaluation["histogram"]
    assert len(histogram["edges"]) == 21 and sum(histogram["anomalous"]) == 4
    assert sum(histogram["normal"]) == evaluation["normal_count"]

    # Another threshold on request: at 0 every normal item is a false alarm and nothing is missed.
    at_zero = client.get(f"/api/models/{model_id}/evaluation", params={"threshold": 0}).json()["at_threshold"]
    assert len(at_zero["false_positives"]) == evaluation["normal_count"] and at_zero["false_negatives"] == []
    assert client.get(f"/api/models/{model_id}/evaluation", params={"threshold": 1.5}).status_code == 422

    # A deleted media item stays in the evaluation under its snapshot item, without a media id.
    gone = next(item for item in items if item["label"] == "normal")
    assert client.delete(f"/api/media/{gone['media_id']}").status_code == 204
    after = client.get(f"/api/models/{model_id}/evaluation").json()["items"]
    assert next(item for item in after if item["snapshot_item_id"] == gone["snapshot_item_id"])["media_id"] is None
    assert load_record(client.app.state.store, model_id) is not None


def test_models_without_an_evaluation_say_why(client: TestClient, project: dict) -> None:
    old = insert_model(client, project["id"])  # ready, trained before per-item scores were recorded
    missing = client.get(f"/api/models/{old}/evaluation")
    assert missing.status_code == 404 and "no evaluation record" in missing.json()["detail"]
    training = insert_model(client, project["id"], status="training")
    busy = client.get(f"/api/models/{training}/evaluation")
    assert busy.status_code == 409 and "not ready" in busy.json()["detail"]
    assert client.get(f"/api/models/{uuid.uuid4()}/evaluation").status_code == 404
    assert client.get("/api/models/not-a-uuid/evaluation").status_code == 422


def test_a_pipeline_may_take_its_models_threshold(client: TestClient, project: dict) -> None:
    pipeline = create_pipeline(client, project["id"], config={"threshold": "model"})
    assert pipeline["config"]["threshold"] == "model"
    patched = client.patch(f"/api/pipelines/{pipeline['id']}", json={"config": {"threshold": 0.3}})
    assert patched.status_code == 200 and patched.json()["config"]["threshold"] == 0.3
    for wrong in ("auto", 1.5, -0.1, "0.4"):
        refused = client.patch(f"/api/pipelines/{pipeline['id']}", json={"config": {"threshold": wrong}})
        assert refused.status_code == 422, (wrong, refused.text)
