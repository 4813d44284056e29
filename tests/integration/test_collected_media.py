"""Collected frames stored through the real database and store: origin, score, split, and the cap."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from infra.blob_gc import thumbnail_key
from infra.collected_media import CollectedMediaWriter
from infra.storage import blob_key
from pipelines.collection import encode_frame
from tests.integration.media_support import upload
from tests.integration.pipeline_support import create_pipeline

START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def frames(count: int):
    return [encode_frame(np.full((48, 64, 3), 20 + 10 * index, dtype=np.uint8), "normal", 0.05 * index,
                         START + timedelta(seconds=index), index) for index in range(count)]


def collected(client, project_id: str) -> list[dict]:
    body = client.get(f"/api/projects/{project_id}/media", params={"origin": "collected", "limit": 1000}).json()
    return sorted(body["items"], key=lambda item: item["filename"])


@pytest.fixture
def writer_for(client, project):
    pipeline = create_pipeline(client, project["id"])

    def build(cap: int, thumbnail_size: int | None = None) -> CollectedMediaWriter:
        return CollectedMediaWriter(client.app.state.settings.resolved_database_url, client.app.state.store,
                                    uuid.UUID(project["id"]), uuid.UUID(pipeline["id"]), cap,
                                    thumbnail_size or client.app.state.settings.thumbnail_size)

    build.pipeline_id = pipeline["id"]
    return build


def test_collected_frames_become_media_with_origin_pipeline_and_score(client, project, writer_for):
    write = writer_for(100)
    for frame in frames(3):
        write(frame)
    items = collected(client, project["id"])
    assert [(item["origin"], item["pipeline_id"], item["label"]) for item in items] == [
        ("collected", writer_for.pipeline_id, "normal")] * 3
    assert [item["score"] for item in items] == pytest.approx([0.0, 0.05, 0.1])
    assert all(item["split"] in ("train", "eval") for item in items)
    first = frames(1)[0]
    assert client.get(f"/api/media/{items[0]['id']}").content == first.png  # the raw frame, as stored
    assert client.get(items[0]["thumbnail_url"]).status_code == 200


def test_the_cap_removes_the_oldest_collected_media_only(client, project, writer_for):
    batch = frames(5)
    # The first frame's exact bytes were also uploaded by a person: that blob must survive the cap.
    assert upload(client, project["id"], [("kept.png", batch[0].png)]).status_code == 201
    write = writer_for(3)
    for frame in batch:
        write(frame)
    assert [item["filename"] for item in collected(client, project["id"])] == [frame.filename for frame in batch[2:]]
    uploaded = client.get(f"/api/projects/{project['id']}/media", params={"origin": "uploaded"}).json()
    assert [item["filename"] for item in uploaded["items"]] == ["kept.png"]

    keys = set(client.app.state.store.list())
    assert blob_key(batch[0].sha256) in keys  # still used by the uploaded copy
    assert blob_key(batch[1].sha256) not in keys and thumbnail_key(batch[1].sha256) not in keys
    assert all(blob_key(frame.sha256) in keys for frame in batch[2:])


def test_a_failed_write_leaves_no_row_and_no_blob(client, project, writer_for):
    write = writer_for(100)
    frame = frames(1)[0]
    broken = CollectedMediaWriter(client.app.state.settings.resolved_database_url, client.app.state.store,
                                  uuid.uuid4(), uuid.UUID(writer_for.pipeline_id), 100, 256)  # a project that is gone
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the database raises for the foreign key
        broken(frame)
    assert collected(client, project["id"]) == []
    assert blob_key(frame.sha256) not in set(client.app.state.store.list())
    write(frame)
    assert len(collected(client, project["id"])) == 1


def test_collected_frames_get_thumbnails_of_the_configured_size(client, project, writer_for):
    """INSPECT_THUMBNAIL_SIZE applies to collected frames as to uploads (one renderer for both)."""
    frame = encode_frame(np.full((300, 400, 3), 90, dtype=np.uint8), "normal", 0.1, START, 0)
    writer_for(100, thumbnail_size=40)(frame)
    item = collected(client, project["id"])[0]
    thumbnail = Image.open(io.BytesIO(client.get(item["thumbnail_url"]).content))
    assert thumbnail.size == (40, 30)
