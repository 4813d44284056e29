"""Server paths inside INSPECT_ALLOWED_PATHS, no link-local or metadata hosts, INSPECT_OUTBOUND_ALLOW,
and the JSON body limit: checked by the API on create/PATCH and by the runtime when it builds a pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.configs import IpCameraConfig, WebhookConfig
from infra.configs.confinement import Confinement, NotAllowed
from infra.settings import Settings
from pipelines.sinks import build_sink_worker
from pipelines.sinks.webhook import WebhookSink
from pipelines.sources import SourceError, build_source
from pipelines.sources.ip_camera import IpCameraSource
from tests.integration.test_pipeline_sinks import make_event


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    folder = tmp_path / "line"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.mp4").write_bytes(b"not a video")
    return folder


def make_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def client(make_settings: Callable[..., Settings], allowed: Path) -> Iterator[TestClient]:
    yield from make_client(make_settings(allowed_paths=str(allowed), max_json_bytes=4096))


@pytest.fixture
def project_id(client: TestClient) -> str:
    return client.post("/api/projects", json={"name": "Line 1"}).json()["id"]


def create(client: TestClient, project_id: str, resource: str, type_name: str, config: dict):
    body = {"type": type_name, "name": "x", "config": config}
    return client.post(f"/api/projects/{project_id}/{resource}", json=body)


def assert_refused(response, setting: str) -> None:
    assert response.status_code == 422, response.text
    assert setting in response.json()["detail"]


@pytest.mark.parametrize(("resource", "type_name", "field"), [
    ("sources", "video_file", "path"), ("sources", "images_folder", "path"), ("sinks", "filesystem", "output_dir")])
def test_paths_outside_the_allowed_folders_are_refused(client, project_id, allowed, outside, resource, type_name,
                                                       field):
    escape = f"{allowed}/../elsewhere/secret.mp4"
    link = allowed / "link"
    link.symlink_to(outside)
    for path in (str(outside / "secret.mp4"), escape, str(link), str(link / "secret.mp4"), "/etc", "~"):
        assert_refused(create(client, project_id, resource, type_name, {field: path}), "INSPECT_ALLOWED_PATHS")
    assert client.get(f"/api/projects/{project_id}/{resource}").json() == []  # nothing half-written
    inside = create(client, project_id, resource, type_name, {field: str(allowed / "cam1")})
    relative = create(client, project_id, resource, type_name, {field: "cam2/x"})
    assert inside.status_code == 201 and relative.status_code == 201, (inside.text, relative.text)
    (allowed / "real").mkdir()
    (allowed / "alias").symlink_to(allowed / "real")
    assert create(client, project_id, resource, type_name, {field: str(allowed / "alias")}).status_code == 201
    # PATCH is checked the same way, and a refused PATCH leaves the stored config as it was.
    row = inside.json()
    patched = client.patch(f"/api/{resource}/{row['id']}", json={"config": {field: str(outside)}})
    assert_refused(patched, "INSPECT_ALLOWED_PATHS")
    assert client.get(f"/api/{resource}/{row['id']}").json()["config"][field] == str(allowed / "cam1")


def test_the_default_allowed_folder_is_the_data_dirs_line_folder(tmp_path: Path, make_settings) -> None:
    settings = make_settings(allowed_paths="")
    for client in make_client(settings):
        assert (tmp_path / "data" / "line").is_dir()  # created at start
        project_id = client.post("/api/projects", json={"name": "p"}).json()["id"]
        assert create(client, project_id, "sources", "video_file", {"path": "a.mp4"}).status_code == 201
        refused = create(client, project_id, "sources", "video_file", {"path": str(tmp_path / "a.mp4")})
        assert_refused(refused, "INSPECT_ALLOWED_PATHS")


METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one number: resolved before the check
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]:8080/hook",
    "http://[fd00:ec2::254]/latest/meta-data/",
]


@pytest.mark.parametrize("url", METADATA_URLS)
def test_link_local_and_metadata_hosts_are_refused(client, project_id, url):
    webhook = create(client, project_id, "sinks", "webhook", {"url": url})
    assert webhook.status_code == 422 and "link-local or cloud-metadata" in webhook.json()["detail"]
    broker = url.replace("http://", "mqtt://").split("/latest")[0].rstrip("/").removesuffix("/hook")
    assert create(client, project_id, "sinks", "mqtt", {"broker": broker, "topic": "t"}).status_code == 422
    camera = create(client, project_id, "sources", "ip_camera", {"url": url.replace("http://", "rtsp://")})
    assert camera.status_code == 422
    assert client.get(f"/api/projects/{project_id}/sinks").json() == []


def test_patch_to_a_metadata_host_is_refused(client, project_id):
    hook = create(client, project_id, "sinks", "webhook", {"url": "http://127.0.0.1:9/hook"}).json()
    patched = client.patch(f"/api/sinks/{hook['id']}", json={"config": {"url": "http://169.254.169.254/"}})
    assert patched.status_code == 422
    assert client.get(f"/api/sinks/{hook['id']}").json()["config"]["url"] == "http://127.0.0.1:9/hook"


def test_outbound_allow_restricts_sinks_and_cameras_to_named_hosts(make_settings) -> None:
    settings = make_settings(outbound_allow="127.0.0.1, Broker.Local")
    for client in make_client(settings):
        project_id = client.post("/api/projects", json={"name": "p"}).json()["id"]
        assert create(client, project_id, "sinks", "webhook", {"url": "http://127.0.0.1:9/"}).status_code == 201
        broker = create(client, project_id, "sinks", "mqtt", {"broker": "mqtt://broker.local", "topic": "t"})
        assert broker.status_code == 201, broker.text
        assert_refused(create(client, project_id, "sinks", "webhook", {"url": "http://10.1.2.3/"}),
                       "INSPECT_OUTBOUND_ALLOW")
        assert_refused(create(client, project_id, "sources", "ip_camera", {"url": "rtsp://cam.local/1"}),
                       "INSPECT_OUTBOUND_ALLOW")


def test_the_runtime_checks_again_where_it_opens(allowed: Path, outside: Path) -> None:
    """The pipeline's machine may have other folders and DNS than the API's: the builders check too."""
    confinement = Confinement(roots=(allowed,))
    with pytest.raises(NotAllowed, match="INSPECT_ALLOWED_PATHS"):
        build_source("video_file", {"path": str(outside / "secret.mp4")}, confinement)
    with pytest.raises(NotAllowed, match="INSPECT_ALLOWED_PATHS"):
        build_source("images_folder", {"path": f"{allowed}/../elsewhere"}, confinement)
    with pytest.raises(NotAllowed, match="INSPECT_ALLOWED_PATHS"):
        build_sink_worker("filesystem", "files", {"output_dir": str(outside / "events")}, confinement)
    assert not (outside / "events").exists()  # refused before the sink created its folder
    with pytest.raises(NotAllowed, match="link-local"):
        build_sink_worker("webhook", "hook", {"url": "http://169.254.169.254/"}, confinement)
    with pytest.raises(NotAllowed, match="INSPECT_OUTBOUND_ALLOW"):
        build_sink_worker("mqtt", "mq", {"broker": "mqtt://127.0.0.1", "topic": "t"},
                          Confinement(roots=(allowed,), outbound_hosts=frozenset({"broker.local"})))
    # A relative path opens inside the first allowed folder, wherever the worker's working directory is.
    worker = build_sink_worker("filesystem", "files", {"output_dir": "events"}, confinement)
    assert worker.sink.output_dir == allowed / "events" and (allowed / "events").is_dir()
    worker.sink.close()


def test_json_bodies_over_the_limit_are_413_before_parsing(client, project_id):
    big_name = "x" * 5000
    declared = client.post("/api/projects", json={"name": big_name})
    assert declared.status_code == 413 and "INSPECT_MAX_JSON_BYTES" in declared.json()["detail"]

    def chunks():  # no Content-Length: the bytes received are counted
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    chunked = client.post("/api/projects", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    patched = client.patch(f"/api/projects/{project_id}", json={"name": big_name})
    assert patched.status_code == 413
    assert [project["name"] for project in client.get("/api/projects").json()] == ["Line 1"]
    assert client.post("/api/projects", json={"name": "y" * 200}).status_code == 201  # under the limit


def test_cameras_and_webhooks_are_checked_again_before_each_connection() -> None:
    """Built past the builders' check (as if DNS changed after the start): the connection itself is refused."""
    camera = IpCameraSource(IpCameraConfig(url="rtsp://169.254.169.254/stream", reconnect=False))
    with pytest.raises(SourceError, match="link-local"):
        camera.open()
    hook = WebhookSink(WebhookConfig(url="http://169.254.169.254/hook", retries=0))
    try:
        with pytest.raises(NotAllowed, match="link-local"):
            hook.send(make_event())
    finally:
        hook.close()
