"""Snapshot read API; rows are inserted directly because creation runs as a flow elsewhere."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from infra.database.models import Snapshot

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def add_snapshot(client, project_id: str, **fields) -> str:
    with client.app.state.sessionmaker() as session:
        snapshot = Snapshot(project_id=uuid.UUID(project_id), **fields)
        session.add(snapshot)
        session.commit()
        return str(snapshot.id)


def test_list_and_get_snapshots(client, project):
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = uuid.uuid4()
    older = add_snapshot(client, project["id"], name="Training Set v1", status="completed", media_count=500,
                         created_at=start)
    newer = add_snapshot(client, project["id"], name="Training Set v2", status="pending", job_id=job,
                         created_at=start + timedelta(hours=1))
    failed = add_snapshot(client, project["id"], name="Broken", status="failed", error="storage unreachable",
                          created_at=start - timedelta(days=1))
    other_project = client.post("/api/projects", json={"name": "Other"}).json()
    add_snapshot(client, other_project["id"], name="Not mine")

    listing = client.get(f"/api/projects/{project['id']}/snapshots")
    assert listing.status_code == 200
    assert [item["id"] for item in listing.json()] == [newer, older, failed]  # newest first

    first = client.get(f"/api/snapshots/{older}").json()
    assert first == {"id": older, "project_id": project["id"], "name": "Training Set v1", "status": "completed",
                     "media_count": 500, "job_id": None, "error": None, "created_at": "2026-01-02T03:04:05Z"}
    second = client.get(f"/api/snapshots/{newer}").json()
    assert (second["job_id"], second["media_count"], second["status"]) == (str(job), None, "pending")
    assert ISO_Z.match(second["created_at"])
    assert client.get(f"/api/snapshots/{failed}").json()["error"] == "storage unreachable"
    assert listing.json()[1] == first


def test_snapshot_errors_and_project_cascade(client, project):
    for url in (f"/api/snapshots/{uuid.uuid4()}", f"/api/projects/{uuid.uuid4()}/snapshots"):
        response = client.get(url)
        assert response.status_code == 404 and "detail" in response.json()
    assert client.get("/api/snapshots/not-a-uuid").status_code == 422
    assert client.get(f"/api/projects/{project['id']}/snapshots").json() == []

    snapshot_id = add_snapshot(client, project["id"], name="v1")
    assert client.get(f"/api/snapshots/{snapshot_id}").json()["status"] == "pending"  # the model's default
    assert client.delete(f"/api/projects/{project['id']}").status_code == 204
    assert client.get(f"/api/snapshots/{snapshot_id}").status_code == 404
