"""INSPECT_API_KEY against a real server process: every route is closed without the key, open with it.

Routes are enumerated from the app itself (path parameters filled with random UUIDs), mounted
apps included (every file of a static mount), so an endpoint added later is covered without being
listed here.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from api.access import PUBLIC_ROUTES, is_public
from api.app import create_app
from infra.database.engine import session_scope
from infra.database.models import ActivePipeline, Capture, Model, Pipeline, Project, Sink, Source
from infra.settings import Settings
from tests.integration.api_server import API_KEY as KEY
from tests.integration.api_server import KeyedServer

PARAM = re.compile(r"\{([^}]+)\}")


def operations(tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path template) of every REST route the app serves under /api, HEAD aside (Starlette answers
    it as GET).

    A mount has no methods of its own: each file of a static mount counts as a GET route, any other
    mounted app as GET and POST on its root. The console's pages under /ui/ redirect to its sign-in page
    instead: tests/console/test_console_access.py."""
    app = create_app(Settings(data_dir=tmp_path / "routes"))
    found = {(method, context.path) for context in iter_route_contexts(app.routes)
             for method in (getattr(context, "methods", None) or ()) if method != "HEAD"
             if context.path.startswith("/api/")}
    mounts = [route for route in app.routes if isinstance(route, Mount) and route.path.startswith("/api/")]
    assert mounts, "the app mounts its docs assets: the scan must see them"
    for mount in mounts:
        if isinstance(mount.app, StaticFiles):
            files = [(Path(folder), path) for folder in mount.app.all_directories
                     for path in Path(folder).rglob("*") if path.is_file()]
            assert files, mount.path
            found |= {("GET", f"{mount.path}/{path.relative_to(folder).as_posix()}") for folder, path in files}
            found.add(("POST", f"{mount.path}/{files[0][1].relative_to(files[0][0]).as_posix()}"))
        else:
            found |= {("GET", f"{mount.path}/"), ("POST", f"{mount.path}/")}
    return sorted(found)


def fill(template: str, ids: dict[str, str] | None = None) -> str:
    return PARAM.sub(lambda match: (ids or {}).get(match.group(1), str(uuid.uuid4())), template)


@pytest.fixture
def server(keyed_server: KeyedServer) -> tuple[str, Path]:
    return keyed_server.base_url, keyed_server.data_dir


@pytest.fixture
def http(server: tuple[str, Path]) -> Iterator[httpx.Client]:
    """One client for the many calls of a route scan (a client per call costs ~34 ms of CPU: its TLS context)."""
    with httpx.Client(base_url=server[0], timeout=30) as client:
        yield client


def call(http: httpx.Client, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """One request, as a client with nothing from earlier requests would make it (no cookies kept)."""
    http.cookies.clear()
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    return http.request(method, path, json=body, headers=headers)


def test_every_route_but_health_and_docs_is_refused_without_the_key(http, tmp_path: Path) -> None:
    checked = 0
    for method, template in operations(tmp_path):
        path = fill(template)
        anonymous = call(http, method, path)
        wrong = call(http, method, path, {"Authorization": "Bearer not-the-key", "X-API-Key": "nope"})
        with_bearer = call(http, method, path, {"Authorization": f"Bearer {KEY}"})
        with_header = call(http, method, path, {"X-API-Key": KEY})
        if is_public(method, template):
            assert anonymous.status_code == 200, (method, template, anonymous.text)
            continue
        for refused in (anonymous, wrong):
            assert refused.status_code == 401, (method, template, refused.status_code, refused.text[:200])
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "not-the-key" not in refused.text and "nope" not in refused.text
        assert with_bearer.status_code != 401, (method, template, with_bearer.text)
        assert with_header.status_code != 401, (method, template, with_header.text)
        checked += 1
    assert checked >= 40  # the whole API, not a handful


def test_every_public_route_exists(tmp_path: Path) -> None:
    """A public entry without a route (Swagger's oauth2-redirect once) is a hole waiting for a route."""
    assert set(operations(tmp_path)) >= PUBLIC_ROUTES


def test_refusals_are_json_detail_and_cover_unknown_paths(server) -> None:
    base_url, _ = server
    refused = httpx.post(f"{base_url}/api/projects", json={"name": "x"})
    assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]
    assert httpx.get(f"{base_url}/api/no-such-thing").status_code == 401
    assert httpx.get(f"{base_url}/api/no-such-thing", headers={"X-API-Key": KEY}).status_code == 404
    # A wrong key next to the right one is refused, not ignored.
    mixed = {"X-API-Key": KEY, "Authorization": "Bearer wrong"}
    assert httpx.get(f"{base_url}/api/projects", headers=mixed).status_code == 401
    # The key is checked before the body is read: a large body without it is refused just the same.
    assert httpx.post(f"{base_url}/api/projects", content=b"x" * 2_000_000,
                      headers={"Content-Type": "application/json"}).status_code == 401
    created = httpx.post(f"{base_url}/api/projects", json={"name": "Line 1"}, headers={"X-API-Key": KEY})
    assert created.status_code == 201


def test_the_player_page_asks_for_the_key_and_keeps_it_for_the_tab(server) -> None:
    base_url, _ = server
    page = httpx.get(f"{base_url}/api/player", params={"pipeline_id": str(uuid.uuid4())})
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    # The page (static code, no data) prompts on a 401 and keeps the key in sessionStorage for its fetches.
    assert "window.prompt" in page.text and "sessionStorage.setItem" in page.text
    assert "Authorization" in page.text


def test_openapi_declares_the_key_so_swagger_can_send_it(server) -> None:
    base_url, _ = server
    schema = httpx.get(f"{base_url}/api/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerKey"] == {**schemes["bearerKey"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"
    assert schema["security"] == [{"bearerKey": []}, {"apiKeyHeader": []}]
    assert schema["paths"]["/api/health"]["get"]["security"] == []
    assert "401" in schema["paths"]["/api/projects"]["post"]["responses"]


def _seed_running_pipeline(data_dir: Path, token: str) -> dict[str, str]:
    """Rows of every kind, including an active pipeline that holds a control token (as a running flow writes it)."""
    with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
        project = Project(name="Token scan")
        session.add(project)
        session.flush()
        source = Source(project_id=project.id, type="webcam", name="cam", config={"device_index": 0})
        sink = Sink(project_id=project.id, type="webhook", name="hook", config={"url": "http://127.0.0.1:9/"})
        model = Model(project_id=project.id, name="m", architecture="padim", status="ready")
        session.add_all([source, sink, model])
        session.flush()
        pipeline = Pipeline(project_id=project.id, name="p", model_id=model.id, source_id=source.id, sink_id=sink.id)
        session.add(pipeline)
        session.flush()
        active = ActivePipeline(pipeline_id=pipeline.id, status="running", flow_run_id=uuid.uuid4(),
                                control_url="http://127.0.0.1:9/control", control_token=token,
                                started_at=datetime.now(UTC), heartbeat_at=datetime.now(UTC))
        session.add(active)
        session.flush()
        capture = Capture(active_pipeline_id=active.id, sha256="0" * 64, anomaly_score=0.9)
        session.add(capture)
        session.flush()
        return {"project_id": str(project.id), "source_id": str(source.id), "sink_id": str(sink.id),
                "model_id": str(model.id), "pipeline_id": str(pipeline.id), "active_id": str(active.id),
                "capture_id": str(capture.id)}


def test_the_pipeline_control_token_is_never_returned(server, http, tmp_path: Path) -> None:
    base_url, data_dir = server
    token = secrets.token_hex(32)
    ids = _seed_running_pipeline(data_dir, token)
    headers = {"X-API-Key": KEY}
    bodies = []
    for method, template in operations(tmp_path):
        if method == "GET":
            bodies.append(call(http, method, fill(template, ids), headers))
    # The proxied calls fail (nothing listens at the control URL): their errors must not carry it either.
    bodies.append(httpx.post(f"{base_url}/api/active-pipelines/{ids['active_id']}/capture", headers=headers))
    bodies.append(httpx.post(f"{base_url}/api/webrtc/offer", headers=headers,
                             json={"pipeline_id": ids["active_id"], "sdp": "v=0\r\n", "type": "offer"}))
    # The server is shared with the contract fuzz: leave the pipeline stopped, as a stopped flow would.
    with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
        session.get(ActivePipeline, uuid.UUID(ids["active_id"])).status = "stopped"
    assert any(response.status_code == 200 and ids["active_id"] in response.text for response in bodies)
    for response in bodies:
        assert token not in response.text, response.request.url
        assert "control_token" not in response.text, response.request.url
    schema_text = httpx.get(f"{base_url}/api/openapi.json").text
    assert "control_token" not in schema_text and "control_url" not in schema_text
