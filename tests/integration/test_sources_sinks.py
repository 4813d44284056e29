"""Sources and sinks through the real app: CRUD for every type, validation, secret masking."""

from __future__ import annotations

import re
import uuid

import pytest

from infra.configs import MASK
from infra.database.models import Sink, Source

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
FIELDS = {"id", "project_id", "type", "name", "config", "created_at", "updated_at"}

# (resource, type, minimal config, the stored config with defaults filled in)
TYPES = [
    ("sources", "webcam", {"device_index": 1}, {"device_index": 1, "width": None, "height": None, "fps": None}),
    # Creating never contacts the camera: this address is unroutable.
    ("sources", "ip_camera", {"url": "rtsp://10.255.255.1:554/stream"},
     {"url": "rtsp://10.255.255.1:554/stream", "username": None, "password": None, "reconnect": True,
      "reconnect_delay_s": 2.0, "max_reconnect_attempts": None}),
    ("sources", "video_file", {"path": "videos/line.mp4"}, {"path": "videos/line.mp4", "loop": True}),
    ("sources", "images_folder", {"path": "incoming"},
     {"path": "incoming", "pattern": "*", "recursive": False, "loop": True, "watch": False}),
    ("sinks", "webhook", {"url": "https://alerts.example.com/anomaly"},
     {"url": "https://alerts.example.com/anomaly", "method": "POST", "headers": {}, "timeout_s": 10.0, "retries": 3,
      "backoff_s": 1.0, "include_image": False, "cooldown_s": 1.0}),
    ("sinks", "mqtt", {"broker": "mqtt://broker.example.com:1883", "topic": "anomaly/alerts"},
     {"broker": "mqtt://broker.example.com:1883", "topic": "anomaly/alerts", "username": None, "password": None,
      "qos": 1, "include_image": False, "cooldown_s": 1.0, "client_id": None}),
    ("sinks", "filesystem", {"output_dir": "anomalies"},
     {"output_dir": "anomalies", "save_images": True, "cooldown_s": 1.0}),
]

IP_CAMERA = {"type": "ip_camera", "name": "Factory Camera", "config": {
    "url": "rtsp://admin:S3CR3T-url@192.168.1.100:554/stream", "username": "admin", "password": "S3CR3T-field"}}
WEBHOOK = {"type": "webhook", "name": "Alerts", "config": {
    "url": "https://alerts.example.com/anomaly?token=S3CR3T-query",
    "headers": {"Authorization": "Bearer S3CR3T-bearer", "x-api-key": "S3CR3T-key", "Cookie": "S3CR3T-cookie",
                "Content-Type": "application/json"}}}
MQTT = {"type": "mqtt", "name": "MQTT Broker", "config": {
    "broker": "mqtt://broker.example.com:1883", "topic": "anomaly/alerts", "username": "user",
    "password": "S3CR3T-mqtt"}}


def stored_config(client, row_type, row_id: str) -> dict:
    with client.app.state.sessionmaker() as session:
        return session.get(row_type, uuid.UUID(row_id)).config


@pytest.mark.parametrize(("resource", "type_name", "config", "stored"), TYPES)
def test_crud_roundtrip_for_every_type(client, project, resource, type_name, config, stored):
    base = f"/api/projects/{project['id']}/{resource}"
    created = client.post(base, json={"type": type_name, "name": f"My {type_name}", "config": config})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == FIELDS
    assert (body["type"], body["name"], body["config"], body["project_id"]) == (
        type_name, f"My {type_name}", stored, project["id"])
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["updated_at"])

    item = f"/api/{resource}/{body['id']}"
    assert client.get(item).json() == body
    assert client.get(base).json() == [body]

    renamed = client.patch(item, json={"name": "  Renamed  "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert renamed.json()["config"] == stored

    assert client.delete(item).status_code == 204
    assert client.get(item).status_code == 404
    assert client.get(base).json() == []


def test_lists_are_per_project_and_newest_first(client, project):
    other = client.post("/api/projects", json={"name": "Line 2"}).json()

    def folder_sink(project_id: str, name: str) -> dict:
        body = {"type": "filesystem", "name": name, "config": {"output_dir": name}}
        return client.post(f"/api/projects/{project_id}/sinks", json=body).json()

    first, second = folder_sink(project["id"], "a"), folder_sink(project["id"], "b")
    folder_sink(other["id"], "c")
    assert [s["id"] for s in client.get(f"/api/projects/{project['id']}/sinks").json()] == [second["id"], first["id"]]
    assert [s["name"] for s in client.get(f"/api/projects/{other['id']}/sinks").json()] == ["c"]


@pytest.mark.parametrize(("resource", "valid_body"), [
    ("sources", {"type": "webcam", "name": "x", "config": {"device_index": 0}}),
    ("sinks", {"type": "filesystem", "name": "x", "config": {"output_dir": "x"}}),
])
def test_unknown_and_malformed_ids(client, project, resource, valid_body):
    missing = uuid.uuid4()
    for method, path, kwargs in [
        ("get", f"/api/{resource}/{missing}", {}),
        ("patch", f"/api/{resource}/{missing}", {"json": {"name": "x"}}),
        ("delete", f"/api/{resource}/{missing}", {}),
        ("get", f"/api/projects/{missing}/{resource}", {}),
        ("post", f"/api/projects/{missing}/{resource}", {"json": valid_body}),
    ]:
        response = client.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert isinstance(response.json()["detail"], str)
    for method in ("get", "delete"):
        assert client.request(method, f"/api/{resource}/not-a-uuid").status_code == 422
    assert client.get(f"/api/projects/not-a-uuid/{resource}").status_code == 422


BAD_SOURCES = [
    {"type": "usb3", "name": "x", "config": {"device_index": 0}},                 # unknown type
    {"type": "webhook", "name": "x", "config": {"url": "https://h"}},              # a sink type
    {"name": "x", "config": {"device_index": 0}},                                  # no type
    {"type": "webcam", "config": {"device_index": 0}},                             # no name
    {"type": "webcam", "name": "  ", "config": {"device_index": 0}},               # blank name
    {"type": "webcam", "name": "x"},                                               # no config
    {"type": "webcam", "name": "x", "config": {}},                                 # missing config field
    {"type": "webcam", "name": "x", "config": {"device_index": 0, "zoom": 2}},     # unknown config field
    {"type": "webcam", "name": "x", "config": {"device_index": "0"}},              # wrong value type
    {"type": "webcam", "name": "x", "config": {"device_index": 0}, "enabled": 1},  # unknown top-level field
    {"type": "webcam", "name": "x", "config": {"url": "rtsp://cam/s"}},            # another type's config
    {"type": "ip_camera", "name": "x", "config": {"url": "ftp://cam/s"}},
    {"type": "video_file", "name": "x", "config": {"path": "v\u0000.mp4"}},
    {"type": "images_folder", "name": "x", "config": {"path": "d", "pattern": "../*"}},
]
BAD_SINKS = [
    {"type": "webcam", "name": "x", "config": {"device_index": 0}},
    {"type": "webhook", "name": "x", "config": {"url": "https://h", "method": "GET"}},
    {"type": "webhook", "name": "x", "config": {"url": "https://h", "headers": {"X-A": "1\r\nX-B: 2"}}},
    {"type": "mqtt", "name": "x", "config": {"broker": "mqtt://b", "topic": "line/#"}},
    {"type": "mqtt", "name": "x", "config": {"broker": "mqtt://b", "topic": "t", "qos": 5}},
    {"type": "mqtt", "name": "x", "config": {"broker": "http://b", "topic": "t"}},
    {"type": "filesystem", "name": "x", "config": {"output_dir": "out", "save_images": "yes"}},
]


@pytest.mark.parametrize(("resource", "body"),
                         [("sources", body) for body in BAD_SOURCES] + [("sinks", body) for body in BAD_SINKS])
def test_invalid_bodies_are_422_and_store_nothing(client, project, resource, body):
    response = client.post(f"/api/projects/{project['id']}/{resource}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert client.get(f"/api/projects/{project['id']}/{resource}").json() == []


def test_patch_validation(client, project):
    source = client.post(f"/api/projects/{project['id']}/sources", json=IP_CAMERA).json()
    item = f"/api/sources/{source['id']}"
    before = stored_config(client, Source, source["id"])
    before_masked = source["config"]
    for bad in [
        {},                                                     # nothing to update
        {"type": "webcam"},                                     # the type is fixed
        {"config": {"url": "ftp://cam/s"}},                     # invalid for the existing type
        {"config": {"device_index": 0}},                        # another type's config
        {"config": {"url": "rtsp://cam/s", "extra": True}},     # unknown field
        {"name": ""},
        {"name": "ok", "config": {"url": "rtsp://cam/s", "reconnect_delay_s": -1}},  # nothing half-written
    ]:
        response = client.patch(item, json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert "S3CR3T" not in response.text
    assert client.get(item).json()["name"] == "Factory Camera"
    assert stored_config(client, Source, source["id"]) == before

    # A partial config is merged: fields left out keep their stored values (secrets included).
    merged = client.patch(item, json={"config": {"url": "rtsps://cam.local/live", "reconnect": False}})
    assert merged.status_code == 200
    assert merged.json()["config"] == {**before_masked, "url": "rtsps://cam.local/live", "reconnect": False}
    assert stored_config(client, Source, source["id"])["password"] == before["password"]


@pytest.mark.parametrize(("resource", "row_type", "body"), [
    ("sources", Source, IP_CAMERA), ("sinks", Sink, WEBHOOK), ("sinks", Sink, MQTT)])
def test_secrets_are_stored_as_given_and_masked_in_every_response(client, project, resource, row_type, body):
    base = f"/api/projects/{project['id']}/{resource}"
    created = client.post(base, json=body)
    assert created.status_code == 201
    item = f"/api/{resource}/{created.json()['id']}"
    responses = [created, client.get(item), client.get(base), client.patch(item, json={"name": "Renamed"})]
    for response in responses:
        assert response.status_code in (200, 201)
        assert "S3CR3T" not in response.text and MASK in response.text
    stored = stored_config(client, row_type, created.json()["id"])
    assert stored.items() >= body["config"].items()


def test_masked_response_config_keeps_stored_secrets_on_patch(client, project):
    created = client.post(f"/api/projects/{project['id']}/sinks", json=WEBHOOK).json()
    item = f"/api/sinks/{created['id']}"
    masked = client.get(item).json()["config"]
    assert masked["headers"] == {"Authorization": MASK, "x-api-key": MASK, "Cookie": MASK,
                                 "Content-Type": "application/json"}
    assert masked["url"] == f"https://alerts.example.com/anomaly?token={MASK}"

    # The edit-form round trip: change one field, send the masked rest back unchanged.
    patched = client.patch(item, json={"config": masked | {"retries": 5}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"] == masked | {"retries": 5}
    stored = stored_config(client, Sink, created["id"])
    assert stored["headers"] == WEBHOOK["config"]["headers"] and stored["retries"] == 5
    assert stored["url"] == WEBHOOK["config"]["url"]

    # A new value replaces the secret; a header left out is removed.
    headers = {"Authorization": "Bearer S3CR3T-new", "Cookie": MASK}
    patched = client.patch(item, json={"config": masked | {"headers": headers}})
    assert patched.status_code == 200 and "S3CR3T" not in patched.text
    assert stored_config(client, Sink, created["id"])["headers"] == {"Authorization": "Bearer S3CR3T-new",
                                                                     "Cookie": "S3CR3T-cookie"}


def test_masked_url_credentials_survive_a_host_change(client, project):
    created = client.post(f"/api/projects/{project['id']}/sources", json=IP_CAMERA).json()
    masked = created["config"]
    assert masked["url"] == f"rtsp://admin:{MASK}@192.168.1.100:554/stream" and masked["password"] == MASK
    moved = masked | {"url": f"rtsp://admin:{MASK}@192.168.1.101:554/stream"}
    assert client.patch(f"/api/sources/{created['id']}", json={"config": moved}).status_code == 200
    stored = stored_config(client, Source, created["id"])
    assert stored["url"] == "rtsp://admin:S3CR3T-url@192.168.1.101:554/stream"
    assert stored["password"] == "S3CR3T-field"


def test_a_mask_with_nothing_stored_is_refused(client, project):
    # On create there is nothing to keep: storing the mask as a password would be silently wrong.
    body = MQTT | {"config": MQTT["config"] | {"password": MASK}}
    response = client.post(f"/api/projects/{project['id']}/sinks", json=body)
    assert response.status_code == 422 and "masked" in response.json()["detail"]
    assert client.get(f"/api/projects/{project['id']}/sinks").json() == []

    source = client.post(f"/api/projects/{project['id']}/sources", json={
        "type": "ip_camera", "name": "cam", "config": {"url": "rtsp://cam/s"}}).json()
    for config in ({"url": "rtsp://cam/s", "password": MASK}, {"url": f"rtsp://admin:{MASK}@cam/s"}):
        response = client.patch(f"/api/sources/{source['id']}", json={"config": config})
        assert response.status_code == 422 and "masked" in response.json()["detail"]
    assert stored_config(client, Source, source["id"])["url"] == "rtsp://cam/s"


def test_mqtt_validation_errors_do_not_echo_restored_secrets(client, project):
    created = client.post(f"/api/projects/{project['id']}/sinks", json=MQTT).json()
    masked = created["config"]
    # The password is restored from storage, then the whole config fails: the error must not show it.
    response = client.patch(f"/api/sinks/{created['id']}", json={"config": masked | {"username": None}})
    assert response.status_code == 422
    assert "S3CR3T" not in response.text and "username" in response.text
