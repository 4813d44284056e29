"""Pipelines through the real app: CRUD, reference checks, config merge, delete-in-use conflicts."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.integration.pipeline_support import (
    FOLDER_SINK,
    WEBCAM,
    create,
    create_pipeline,
    insert_model,
    pipeline_parts,
)

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
NO_COLLECTION = {"mode": "off", "interval_s": 10.0, "score_below": 0.2, "band": [0.4, 0.6], "max_per_hour": 60}


def stored(threshold: float, fps: float) -> dict:
    """A pipeline config as the API returns it, with data collection off."""
    return {"threshold": threshold, "fps": fps, "data_collection": NO_COLLECTION}


def test_pipeline_crud_roundtrip(client, project):
    parts = pipeline_parts(client, project["id"])
    base = f"/api/projects/{project['id']}/pipelines"
    created = client.post(base, json={"name": "Production Line Monitor", **parts})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "project_id", "name", "model_id", "source_id", "sink_id", "config", "created_at",
                         "updated_at", "follow_champion"}
    assert body["config"] == stored(0.5, 30.0)
    assert {key: body[key] for key in parts} == parts and body["project_id"] == project["id"]
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["updated_at"])

    item = f"/api/pipelines/{body['id']}"
    assert client.get(item).json() == body
    assert client.get(base).json() == [body]

    # A partial config change keeps the other keys.
    patched = client.patch(item, json={"config": {"threshold": 0.8}})
    assert patched.status_code == 200 and patched.json()["config"] == stored(0.8, 30.0)
    patched = client.patch(item, json={"name": "Line 7", "config": {"fps": 5}})
    assert patched.json()["name"] == "Line 7" and patched.json()["config"] == stored(0.8, 5.0)

    # Swap every reference for another row of the same project.
    other = pipeline_parts(client, project["id"])
    patched = client.patch(item, json=other)
    assert patched.status_code == 200 and {key: patched.json()[key] for key in other} == other

    assert client.delete(item).status_code == 204
    assert client.get(item).status_code == 404
    assert client.get(base).json() == []


def test_config_given_on_create(client, project):
    pipeline = create_pipeline(client, project["id"], config={"threshold": 0.25, "fps": 12.5})
    assert pipeline["config"] == stored(0.25, 12.5)
    assert create_pipeline(client, project["id"], config={"fps": 1})["config"] == stored(0.5, 1.0)


def test_a_model_still_training_may_be_referenced(client, project):
    parts = pipeline_parts(client, project["id"]) | {"model_id": insert_model(client, project["id"],
                                                                              status="training")}
    response = client.post(f"/api/projects/{project['id']}/pipelines", json={"name": "Prepared", **parts})
    assert response.status_code == 201


def test_data_collection_is_set_on_create_and_replaced_by_patch(client, project):
    uncertain = {"mode": "uncertain", "band": [0.3, 0.7], "max_per_hour": 120}
    pipeline = create_pipeline(client, project["id"], config={"threshold": 0.6, "data_collection": uncertain})
    assert pipeline["config"]["data_collection"] == NO_COLLECTION | uncertain
    item = f"/api/pipelines/{pipeline['id']}"
    patched = client.patch(item, json={"config": {"data_collection": {"mode": "interval", "interval_s": 2}}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"] == stored(0.6, 30.0) | {
        "data_collection": NO_COLLECTION | {"mode": "interval", "interval_s": 2.0}}
    assert client.patch(item, json={"config": {"fps": 3}}).json()["config"]["data_collection"]["mode"] == "interval"


@pytest.mark.parametrize("config", [
    {"threshold": 1.5}, {"threshold": -0.1}, {"fps": 0}, {"fps": 121}, {"fps": "30"}, {"speed": 2},
    {"data_collection": {"mode": "always"}}, {"data_collection": {"band": [0.7, 0.3]}},
    {"data_collection": {"band": [0.5]}}, {"data_collection": {"interval_s": 0}},
    {"data_collection": {"max_per_hour": 0}}, {"data_collection": {"mode": "interval", "every": 3}},
])
def test_invalid_config_is_422(client, project, config):
    parts = pipeline_parts(client, project["id"])
    base = f"/api/projects/{project['id']}/pipelines"
    assert client.post(base, json={"name": "p", **parts, "config": config}).status_code == 422
    assert client.get(base).json() == []
    pipeline = create(client, project["id"], "pipelines", {"name": "p", **parts})
    response = client.patch(f"/api/pipelines/{pipeline['id']}", json={"name": "changed", "config": config})
    assert response.status_code == 422 and response.json()["detail"]
    assert client.get(f"/api/pipelines/{pipeline['id']}").json() == pipeline


def test_invalid_bodies(client, project):
    parts = pipeline_parts(client, project["id"])
    base = f"/api/projects/{project['id']}/pipelines"
    for body in [
        parts,                                                    # no name
        {"name": " ", **parts},
        {"name": "p", **parts, "active": True},                   # unknown field
        {"name": "p", **parts, "model_id": "not-a-uuid"},
        {"name": "p", "source_id": parts["source_id"], "sink_id": parts["sink_id"]},  # no model
    ]:
        response = client.post(base, json=body)
        assert response.status_code == 422, (body, response.text)
    assert client.get(base).json() == []
    pipeline = create(client, project["id"], "pipelines", {"name": "p", **parts})
    for body in [{}, {"project_id": str(uuid.uuid4())}, {"sink_id": "nope"}]:
        assert client.patch(f"/api/pipelines/{pipeline['id']}", json=body).status_code == 422


@pytest.mark.parametrize("field", ["model_id", "source_id", "sink_id"])
def test_unknown_reference_is_404(client, project, field):
    parts = pipeline_parts(client, project["id"])
    base = f"/api/projects/{project['id']}/pipelines"
    missing = str(uuid.uuid4())
    response = client.post(base, json={"name": "p", **parts, field: missing})
    assert response.status_code == 404 and missing in response.json()["detail"]
    pipeline = create(client, project["id"], "pipelines", {"name": "p", **parts})
    response = client.patch(f"/api/pipelines/{pipeline['id']}", json={"name": "q", field: missing})
    assert response.status_code == 404
    assert client.get(f"/api/pipelines/{pipeline['id']}").json() == pipeline


@pytest.mark.parametrize("field", ["model_id", "source_id", "sink_id"])
def test_reference_from_another_project_is_422(client, project, field):
    other = client.post("/api/projects", json={"name": "Line 2"}).json()
    foreign = pipeline_parts(client, other["id"])[field]
    parts = pipeline_parts(client, project["id"])
    base = f"/api/projects/{project['id']}/pipelines"
    response = client.post(base, json={"name": "p", **parts, field: foreign})
    assert response.status_code == 422 and "another project" in response.json()["detail"]
    assert client.get(base).json() == []
    pipeline = create(client, project["id"], "pipelines", {"name": "p", **parts})
    assert client.patch(f"/api/pipelines/{pipeline['id']}", json={field: foreign}).status_code == 422
    assert client.get(f"/api/pipelines/{pipeline['id']}").json() == pipeline


def test_unknown_and_malformed_ids(client, project):
    missing = uuid.uuid4()
    assert client.get(f"/api/pipelines/{missing}").status_code == 404
    assert client.patch(f"/api/pipelines/{missing}", json={"name": "x"}).status_code == 404
    assert client.delete(f"/api/pipelines/{missing}").status_code == 404
    assert client.get(f"/api/projects/{missing}/pipelines").status_code == 404
    parts = pipeline_parts(client, project["id"])
    assert client.post(f"/api/projects/{missing}/pipelines", json={"name": "p", **parts}).status_code == 404
    for method in ("get", "delete"):
        assert client.request(method, "/api/pipelines/not-a-uuid").status_code == 422


@pytest.mark.parametrize(("field", "path"), [("model_id", "models"), ("source_id", "sources"), ("sink_id", "sinks")])
def test_deleting_a_referenced_row_is_409_naming_the_pipelines(client, project, field, path):
    first = create_pipeline(client, project["id"], name="Line A")
    second = create(client, project["id"], "pipelines", {
        "name": "Line B", "model_id": first["model_id"], "source_id": first["source_id"],
        "sink_id": first["sink_id"]})
    row = f"/api/{path}/{first[field]}"
    response = client.delete(row)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert all(text in detail for text in ("Line A", "Line B", first["id"], second["id"]))
    assert client.get(row).status_code == 200

    for pipeline in (first, second):
        assert client.delete(f"/api/pipelines/{pipeline['id']}").status_code == 204
    assert client.delete(row).status_code == 204
    assert client.get(row).status_code == 404


def test_deleting_the_project_removes_its_pipelines(client, project):
    pipeline = create_pipeline(client, project["id"])
    assert client.delete(f"/api/projects/{project['id']}").status_code == 204
    assert client.get(f"/api/pipelines/{pipeline['id']}").status_code == 404
    assert client.get(f"/api/sources/{pipeline['source_id']}").status_code == 404


def test_unused_rows_delete_freely(client, project):
    source = create(client, project["id"], "sources", WEBCAM)
    sink = create(client, project["id"], "sinks", FOLDER_SINK)
    create_pipeline(client, project["id"])  # uses other rows
    assert client.delete(f"/api/sources/{source['id']}").status_code == 204
    assert client.delete(f"/api/sinks/{sink['id']}").status_code == 204
