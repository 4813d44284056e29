"""Requests the contract fuzz (test_contract_fuzz.py) found answered wrongly, kept as plain tests.

Each test names the schemathesis check that caught it. Prefect points at a closed port, as in the fuzz run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.settings import Settings
from tests.network import free_port

KEY = "regression-key"


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = make_settings(api_key=KEY, prefect_api_url=f"http://127.0.0.1:{free_port()}/api")
    with TestClient(create_app(settings), headers={"X-API-Key": KEY}) as test_client:
        yield test_client


def responses_of(client: TestClient, method: str, path: str) -> dict:
    return client.get("/api/openapi.json").json()["paths"][path][method]["responses"]


def test_st401_a_wrong_or_non_bearer_authorization_next_to_the_right_key_is_refused(client) -> None:
    for authorization in ("Bearer 0", "Basic dXNlcjpwdw==", "Bearer", "0"):
        response = client.get("/api/projects", headers={"Authorization": authorization})
        assert response.status_code == 401, authorization
    assert client.get("/api/projects", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_st205_method_not_allowed_lists_every_method_of_the_path(client) -> None:
    some_id = uuid.uuid4()
    cases = {f"/api/pipelines/{some_id}": "DELETE, GET, PATCH", f"/api/jobs/{some_id}": "DELETE, GET",
             f"/api/projects/{some_id}/media": "GET, POST", "/api/projects": "GET, POST"}
    for path, allowed in cases.items():
        response = client.options(path)
        assert response.status_code == 405 and response.headers["allow"] == allowed, path
        assert response.json() == {"detail": "Method Not Allowed"}


def test_st108_string_details_of_422_match_the_documented_schema(client) -> None:
    project = client.post("/api/projects", json={"name": "p"}).json()
    source = client.post(f"/api/projects/{project['id']}/sources",
                         json={"type": "webcam", "name": "cam", "config": {"device_index": 0}}).json()
    empty_patch = client.patch(f"/api/sources/{source['id']}", json={})
    assert empty_patch.status_code == 422 and isinstance(empty_patch.json()["detail"], str)
    documented = responses_of(client, "patch", "/api/sources/{source_id}")["422"]
    assert documented["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.mark.parametrize(("path", "body"), [
    ("/api/active-pipelines", {"pipeline_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd"}),
    ("/api/webrtc/offer", {"pipeline_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd", "sdp": "0", "type": "offer"}),
    ("/api/webrtc/candidate", {"candidate": "", "pipeline_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd",
                               "sdpMLineIndex": 0, "sdpMid": "", "session_id": "x", "usernameFragment": ""}),
])
def test_st103_an_unknown_id_in_the_body_is_a_documented_404(client, path, body) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 404 and "not found" in response.json()["detail"]
    assert "404" in responses_of(client, "post", path)


@pytest.mark.parametrize(("method", "path", "template"), [
    ("get", "/api/jobs/e3e70682-c209-1cac-a29f-6fbed82c07cd", "/api/jobs/{job_id}"),
    ("delete", "/api/jobs/e3e70682-c209-1cac-a29f-6fbed82c07cd", "/api/jobs/{job_id}"),
])
def test_st103_prefect_down_is_a_documented_503(client, method, path, template) -> None:
    response = client.request(method.upper(), path)
    assert response.status_code == 503 and "Job orchestration unavailable" in response.json()["detail"]
    assert "503" in responses_of(client, method, template)


def test_st901_a_schedule_put_while_prefect_is_down_is_503_not_500(client) -> None:
    """Seed C0PppK: the deployment lookup behind PUT training-schedule let Prefect's ConnectError through."""
    project = client.post("/api/projects", json={"name": "p"}).json()
    body = {"cron": "0 2 * * *", "timezone": "UTC", "architecture": "padim", "parameters": {}, "promotion": "auto",
            "min_improvement": 0, "min_new_images": 0, "active": False}
    response = client.put(f"/api/projects/{project['id']}/training-schedule", json=body)
    assert response.status_code == 503, response.text
    assert "Prefect" in response.json()["detail"]


def test_not_a_server_error_an_import_request_whose_json_is_not_utf8_gets_422(client) -> None:
    """Schemathesis (not_a_server_error, replay dmKXIo): invalid UTF-8 in a JSON import body answered 500,
    because the validation error carried the raw bytes into the JSON error response."""
    project = client.post("/api/projects", json={"name": "Imports"}).json()
    response = client.post(f"/api/projects/{project['id']}/imports", content=b'{"path": "\xff"}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "Invalid JSON" in str(response.json()["detail"])
