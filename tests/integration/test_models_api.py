"""Model rows through the real app: list, read, delete (with stored files), conflicts."""

from __future__ import annotations

import re
import uuid

from tests.integration.pipeline_support import create_pipeline, insert_model

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
FIELDS = {"id", "project_id", "name", "format", "architecture", "status", "metrics", "parameters", "created_at",
          "updated_at", "job_id", "snapshot_id", "mlflow_run_id", "mlflow_model_name", "mlflow_model_version",
          "error", "champion", "links"}


def test_list_and_get(client, project):
    job_id, snapshot_id = uuid.uuid4(), uuid.uuid4()
    first = insert_model(client, project["id"], name="PatchCore v1", architecture="patchcore",
                         metrics={"image_auroc": 0.95, "pixel_auroc": 0.92}, parameters={"backbone": "resnet18"},
                         job_id=job_id, snapshot_id=snapshot_id, mlflow_run_id="abc123",
                         mlflow_model_name="project-x-patchcore", mlflow_model_version="3")
    second = insert_model(client, project["id"], name="PaDiM v2", status="failed", error="out of memory")
    other = client.post("/api/projects", json={"name": "Line 2"}).json()
    insert_model(client, other["id"], name="elsewhere")

    listed = client.get(f"/api/projects/{project['id']}/models")
    assert listed.status_code == 200
    assert [model["id"] for model in listed.json()] == [second, first]  # newest first

    body = client.get(f"/api/models/{first}").json()
    assert set(body) == FIELDS
    assert body == listed.json()[1]
    assert body | {"created_at": None, "updated_at": None} == {
        "id": first, "project_id": project["id"], "name": "PatchCore v1", "format": "openvino",
        "architecture": "patchcore", "status": "ready", "metrics": {"image_auroc": 0.95, "pixel_auroc": 0.92},
        "parameters": {"backbone": "resnet18"}, "created_at": None, "updated_at": None, "job_id": str(job_id),
        "snapshot_id": str(snapshot_id), "mlflow_run_id": "abc123", "mlflow_model_name": "project-x-patchcore",
        "mlflow_model_version": "3", "error": None, "champion": False,
        # Browser links to the MLflow run and the training flow run (supervised ports on the client's host).
        "links": {"mlflow_run": "http://testserver:5000/#/runs/abc123",
                  "prefect_flow_run": f"http://testserver:4200/runs/flow-run/{job_id}"}}
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["updated_at"])
    failed = client.get(f"/api/models/{second}").json()
    assert (failed["status"], failed["error"], failed["job_id"], failed["metrics"]) == ("failed", "out of memory",
                                                                                         None, {})
    assert failed["links"] == {"mlflow_run": None, "prefect_flow_run": None}


def test_delete_removes_the_row_and_only_its_files(client, project):
    store = client.app.state.store
    doomed, kept = insert_model(client, project["id"]), insert_model(client, project["id"])
    for model_id in (doomed, kept):
        store.put(f"models/{model_id}/openvino/model.xml", b"<xml/>")
        store.put(f"models/{model_id}/openvino/model.bin", b"\x00" * 16)
    assert client.delete(f"/api/models/{doomed}").status_code == 204
    assert client.get(f"/api/models/{doomed}").status_code == 404
    assert sorted(store.list("models/")) == [f"models/{kept}/openvino/model.bin", f"models/{kept}/openvino/model.xml"]
    assert [model["id"] for model in client.get(f"/api/projects/{project['id']}/models").json()] == [kept]


def test_delete_in_use_is_409_and_keeps_the_files(client, project):
    pipeline = create_pipeline(client, project["id"], name="Station 3")
    key = f"models/{pipeline['model_id']}/openvino/model.xml"
    client.app.state.store.put(key, b"<xml/>")
    response = client.delete(f"/api/models/{pipeline['model_id']}")
    assert response.status_code == 409
    assert "Station 3" in response.json()["detail"] and pipeline["id"] in response.json()["detail"]
    assert client.get(f"/api/models/{pipeline['model_id']}").status_code == 200
    assert client.app.state.store.exists(key)


def test_unknown_and_malformed_ids(client):
    missing = uuid.uuid4()
    for method, path in [("get", f"/api/models/{missing}"), ("delete", f"/api/models/{missing}"),
                         ("get", f"/api/projects/{missing}/models")]:
        response = client.request(method, path)
        assert response.status_code == 404 and isinstance(response.json()["detail"], str)
    for method in ("get", "delete"):
        assert client.request(method, "/api/models/not-a-uuid").status_code == 422
    assert client.get("/api/projects/not-a-uuid/models").status_code == 422
