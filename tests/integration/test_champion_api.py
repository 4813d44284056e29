"""Champion promotion and pipelines that follow the champion, through the API (no Prefect needed:
promotion is rows only, and models inserted here have no MLflow version; the alias move and the live
swap are covered by tests/integration/test_retraining.py)."""

from __future__ import annotations

import uuid

from tests.integration.pipeline_support import FOLDER_SINK, WEBCAM, create, insert_model


def _champions(client, project_id: str) -> list[str]:
    return [model["id"] for model in client.get(f"/api/projects/{project_id}/models").json() if model["champion"]]


def test_promote_keeps_one_champion_per_project(client, project):
    first, second = insert_model(client, project["id"]), insert_model(client, project["id"], name="PaDiM v2")
    training = insert_model(client, project["id"], name="PaDiM v3", status="training")
    other_project = client.post("/api/projects", json={"name": "Line 2"}).json()["id"]
    elsewhere = insert_model(client, other_project)
    assert client.get(f"/api/models/{first}").json()["champion"] is False

    promoted = client.post(f"/api/models/{first}/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["id"] == first and promoted.json()["champion"] is True
    assert client.post(f"/api/models/{elsewhere}/promote").status_code == 200
    assert client.post(f"/api/models/{first}/promote").status_code == 200  # again: nothing changes
    assert _champions(client, project["id"]) == [first]

    assert client.post(f"/api/models/{second}/promote").json()["champion"] is True
    assert _champions(client, project["id"]) == [second]
    assert _champions(client, other_project) == [elsewhere]  # other projects keep theirs

    refused = client.post(f"/api/models/{training}/promote")
    assert refused.status_code == 409 and "training" in refused.json()["detail"]
    assert _champions(client, project["id"]) == [second]
    assert client.post(f"/api/models/{uuid.uuid4()}/promote").status_code == 404
    assert client.post("/api/models/not-a-uuid/promote").status_code == 422


def test_pipelines_that_follow_the_champion(client, project):
    project_id = project["id"]
    source = create(client, project_id, "sources", WEBCAM)["id"]
    sink = create(client, project_id, "sinks", FOLDER_SINK)["id"]
    base = f"/api/projects/{project_id}/pipelines"
    parts = {"source_id": source, "sink_id": sink}
    model = insert_model(client, project_id)

    neither = client.post(base, json={"name": "No model", **parts})
    assert neither.status_code == 422 and "follow_champion" in neither.json()["detail"]
    follower = client.post(base, json={"name": "Follower", "follow_champion": True, **parts})
    assert follower.status_code == 201, follower.text
    follower = follower.json()
    assert follower["follow_champion"] is True and follower["model_id"] is None
    fixed = create(client, project_id, "pipelines", {"name": "Fixed", "model_id": model, **parts})
    assert fixed["follow_champion"] is False

    # Nothing to run before a champion exists: the start is refused and nothing is left behind.
    refused = client.post("/api/active-pipelines", json={"pipeline_id": follower["id"]})
    assert refused.status_code == 409 and "champion" in refused.json()["detail"]
    assert client.get("/api/active-pipelines", params={"pipeline_id": follower["id"]}).json() == []

    # Promotion points every follower at the new champion; other pipelines keep their model.
    champion = insert_model(client, project_id, name="Champion")
    client.post(f"/api/models/{champion}/promote")
    assert client.get(f"/api/pipelines/{follower['id']}").json()["model_id"] == champion
    assert client.get(f"/api/pipelines/{fixed['id']}").json()["model_id"] == model
    later = create(client, project_id, "pipelines", {"name": "Later", "follow_champion": True, **parts})
    assert later["model_id"] == champion
    same = client.post(base, json={"name": "Explicit", "follow_champion": True, "model_id": champion, **parts})
    assert same.status_code == 201 and same.json()["model_id"] == champion
    conflicting = client.post(base, json={"name": "Both", "follow_champion": True, "model_id": model, **parts})
    assert conflicting.status_code == 422 and "leave model_id out" in conflicting.json()["detail"]

    # A follower cannot be pinned to another model without leaving the champion first.
    pinned = client.patch(f"/api/pipelines/{follower['id']}", json={"model_id": model})
    assert pinned.status_code == 422
    left = client.patch(f"/api/pipelines/{follower['id']}", json={"follow_champion": False, "model_id": model})
    assert left.status_code == 200, left.text
    assert left.json()["follow_champion"] is False and left.json()["model_id"] == model
    joined = client.patch(f"/api/pipelines/{fixed['id']}", json={"follow_champion": True})
    assert joined.status_code == 200 and joined.json()["model_id"] == champion
    # Leaving without naming a model keeps the one it runs.
    kept = client.patch(f"/api/pipelines/{fixed['id']}", json={"follow_champion": False})
    assert kept.json()["model_id"] == champion and kept.json()["follow_champion"] is False

    # The champion a follower runs is in use: it cannot be deleted.
    assert client.delete(f"/api/models/{champion}").status_code == 409
