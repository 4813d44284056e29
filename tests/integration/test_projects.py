import re
import uuid

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_project_crud_roundtrip(client):
    created = client.post("/api/projects", json={"name": "Manufacturing QC"})
    assert created.status_code == 201
    body = created.json()
    assert uuid.UUID(body["id"]) and body["name"] == "Manufacturing QC"
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["updated_at"])

    assert client.get(f"/api/projects/{body['id']}").json() == body
    assert [p["id"] for p in client.get("/api/projects").json()] == [body["id"]]

    patched = client.patch(f"/api/projects/{body['id']}", json={"name": "Renamed"})
    assert patched.status_code == 200 and patched.json()["name"] == "Renamed"

    assert client.delete(f"/api/projects/{body['id']}").status_code == 204
    assert client.get(f"/api/projects/{body['id']}").status_code == 404
    assert client.get("/api/projects").json() == []


def test_project_errors(client):
    missing = uuid.uuid4()
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/api/projects/{missing}")
        assert response.status_code == 404 and "detail" in response.json()
    assert client.patch(f"/api/projects/{missing}", json={"name": "x"}).status_code == 404
    assert client.get("/api/projects/not-a-uuid").status_code == 422
    for bad in ({}, {"name": ""}, {"name": "   "}, {"name": 5}):
        response = client.post("/api/projects", json=bad)
        assert response.status_code == 422 and "detail" in response.json()
    assert client.get("/api/projects").json() == []


def test_health_and_openapi(client):
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["components"]["database"]["ok"] is True
    spec = client.get("/api/openapi.json").json()
    assert "/api/projects" in spec["paths"]
    assert client.get("/api/docs").status_code == 200
