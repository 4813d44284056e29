"""The API on PostgreSQL: migrations applied at start, then a media round trip in a throwaway database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from infra.database.engine import get_engine
from tests.integration.databases import fresh_postgres_database
from tests.integration.media_support import files_on_disk, part_files, upload

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_client(make_settings) -> Iterator[TestClient]:
    with fresh_postgres_database() as url:  # empty: the app migrates it at start, as on a first `serve`
        settings = make_settings(database_url=url)
        with TestClient(create_app(settings)) as client:
            yield client


def test_media_roundtrip_on_postgres(pg_client, part_images, tmp_path):
    client = pg_client
    database_url = client.app.state.settings.resolved_database_url
    assert get_engine(database_url).dialect.name == "postgresql"
    with get_engine(database_url).connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()

    project = client.post("/api/projects", json={"name": "On PostgreSQL"}).json()
    normal = part_files(part_images, "Free", 2)
    uploaded = upload(client, project["id"], normal + [("bad.png", b"not an image")])
    assert uploaded.status_code == 201, uploaded.text
    assert (uploaded.json()["uploaded"], uploaded.json()["failed"]) == (2, 1)
    assert upload(client, project["id"], part_files(part_images, "Crack", 1), label="anomalous").status_code == 201

    listing = client.get(f"/api/projects/{project['id']}/media", params={"label": "normal", "limit": 1}).json()
    assert listing["total"] == 2 and len(listing["items"]) == 1
    item = listing["items"][0]
    assert item["created_at"].endswith("Z")
    assert client.get(f"/api/media/{item['id']}").content == dict(normal)[item["filename"]]

    assert client.delete(f"/api/media/{item['id']}").status_code == 204
    assert client.get(f"/api/projects/{project['id']}/media").json()["total"] == 2
    assert client.delete(f"/api/projects/{project['id']}").status_code == 204
    assert client.get(f"/api/projects/{project['id']}/media").status_code == 404
    assert files_on_disk(tmp_path / "data" / "storage") == []
