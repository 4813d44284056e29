"""A 2xx means committed: every write is in the database before its response leaves the server.

Against a real server process, a create answered 201 must be readable by the very next request,
on any connection, and a write whose commit fails must not be answered 2xx.
"""

from __future__ import annotations

import io
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from infra.database.engine import session_scope
from infra.database.models import Model
from tests.integration.api_server import ServerProcess

PAIRS_PER_RESOURCE = 200  # x 5 resources = 1,000 create -> read pairs
CLIENTS = 4


@pytest.fixture(scope="module")
def server(isolated_server: ServerProcess) -> tuple[str, Path]:
    return f"{isolated_server.base_url}/api", isolated_server.data_dir


def _png(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (index % 256, (index * 7) % 256, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def _created(response: httpx.Response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def _project(http: httpx.Client, index: int) -> tuple[dict, str]:
    return _created(http.post("/projects", json={"name": f"line {index}"})), "/projects/{id}"


def _source(http: httpx.Client, project_id: str, index: int) -> tuple[dict, str]:
    body = {"type": "ip_camera", "name": f"camera {index}", "config": {"url": f"rtsp://127.0.0.1:8554/cam{index}"}}
    return _created(http.post(f"/projects/{project_id}/sources", json=body)), "/sources/{id}"


def _sink(http: httpx.Client, project_id: str, index: int) -> tuple[dict, str]:
    body = {"type": "webhook", "name": f"hook {index}", "config": {"url": f"http://127.0.0.1:9/hook/{index}"}}
    return _created(http.post(f"/projects/{project_id}/sinks", json=body)), "/sinks/{id}"


def _media(http: httpx.Client, project_id: str, index: int) -> tuple[dict, str]:
    files = [("files", (f"part-{index}.png", _png(index), "image/png"))]
    body = _created(http.post(f"/projects/{project_id}/media", files=files, data={"label": "normal"}))
    assert body["uploaded"] == 1, body
    return body["items"][0], "/media/{id}"


def _run_pairs(base_url: str, create: Callable[[httpx.Client, int], tuple[dict, str]]) -> list[str]:
    """PAIRS_PER_RESOURCE creates, each read back at once on the same client; returns the misses."""
    def worker(indexes: range) -> list[str]:
        misses = []
        with httpx.Client(base_url=base_url, timeout=30) as http:
            for index in indexes:
                row, path = create(http, index)
                read = http.get(path.format(id=row["id"]))
                if read.status_code != 200:
                    misses.append(f"{path.format(id=row['id'])} -> {read.status_code}")
        return misses

    share = PAIRS_PER_RESOURCE // CLIENTS
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = pool.map(worker, [range(n * share, (n + 1) * share) for n in range(CLIENTS)])
    return [miss for misses in results for miss in misses]


def test_every_create_is_readable_by_the_next_request(server: tuple[str, Path]) -> None:
    base_url, data_dir = server
    with httpx.Client(base_url=base_url, timeout=30) as http:
        project = _created(http.post("/projects", json={"name": "pairs"}))
    project_id = project["id"]
    # Pipelines need a model of the project: a row as a finished training would leave it.
    with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
        model = Model(project_id=uuid.UUID(project_id), name="m1", architecture="padim", status="ready")
        session.add(model)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        source, _ = _source(http, project_id, -1)
        sink, _ = _sink(http, project_id, -1)

    def pipeline(http: httpx.Client, index: int) -> tuple[dict, str]:
        body = {"name": f"line {index}", "model_id": str(model.id), "source_id": source["id"], "sink_id": sink["id"]}
        return _created(http.post(f"/projects/{project_id}/pipelines", json=body)), "/pipelines/{id}"

    creators = {
        "projects": _project,
        "sources": lambda http, index: _source(http, project_id, index),
        "sinks": lambda http, index: _sink(http, project_id, index),
        "pipelines": pipeline,
        "media": lambda http, index: _media(http, project_id, index),
    }
    misses = {name: _run_pairs(base_url, create) for name, create in creators.items()}
    assert misses == {name: [] for name in creators}

    # Lists see every row too (the shape a script relies on: create, then list).
    with httpx.Client(base_url=base_url, timeout=30) as http:
        names = {row["name"] for row in http.get("/projects").json()}
        assert {f"line {index}" for index in range(PAIRS_PER_RESOURCE)} <= names
        assert len(http.get(f"/projects/{project_id}/pipelines").json()) == PAIRS_PER_RESOURCE


def test_a_write_whose_commit_fails_is_not_answered_2xx(server: tuple[str, Path]) -> None:
    """A sink delete is executed by the commit itself; a constraint that refuses it must reach the client."""
    base_url, data_dir = server
    with httpx.Client(base_url=base_url, timeout=30) as http:
        project_id = _created(http.post("/projects", json={"name": "guarded"}))["id"]
        sink, _ = _sink(http, project_id, 0)
        # A rule enforced by the database only (as a concurrent writer's reference would be).
        with sqlite3.connect(data_dir / "inspect.db") as connection:
            connection.execute(
                "CREATE TRIGGER keep_guarded_sink BEFORE DELETE ON sinks WHEN OLD.name = 'hook 0' "
                "BEGIN SELECT RAISE(ABORT, 'sink is guarded'); END"
            )
        try:
            response = http.delete(f"/sinks/{sink['id']}")
            assert response.status_code == 409, response.text
            assert "detail" in response.json()
            assert http.get(f"/sinks/{sink['id']}").status_code == 200  # nothing was lost or half-done
        finally:
            with sqlite3.connect(data_dir / "inspect.db") as connection:
                connection.execute("DROP TRIGGER keep_guarded_sink")
        assert http.delete(f"/sinks/{sink['id']}").status_code == 204
        assert http.get(f"/sinks/{sink['id']}").status_code == 404
