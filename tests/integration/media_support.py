"""Helpers shared by the media tests: uploading through the API and looking at what got stored."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from flows.snapshot import freeze_snapshot
from infra.database.models import Snapshot, SnapshotItem


def upload(client: TestClient, project_id: str, files: list[tuple[str, bytes]],
           label: str = "normal") -> httpx.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post(f"/api/projects/{project_id}/media", files=parts, data={"label": label})


def stored_files(client: TestClient) -> list[str]:
    """Every object key in the app's store (blobs, thumbnails, anything else)."""
    return sorted(client.app.state.store.list())


def files_on_disk(storage_root: Path) -> list[str]:
    """Every file under a local storage folder, including any temporary or stray file."""
    return sorted(path.relative_to(storage_root).as_posix() for path in storage_root.rglob("*") if path.is_file())


def part_files(images_dir: Path, defect: str, count: int) -> list[tuple[str, bytes]]:
    """(name, bytes) of the first `count` grayscale JPEGs of one class (``Free``, ``Crack``...), sorted by name."""
    paths = sorted((images_dir / f"MT_{defect}" / "Imgs").glob("*.jpg"))[:count]
    assert len(paths) == count, f"not enough MT_{defect} images in {images_dir}"
    return [(path.name, path.read_bytes()) for path in paths]


def frozen_items(client: TestClient, project_id: str) -> list[SnapshotItem]:
    """Freeze the project's media into a new snapshot (as the snapshot flow does) and return its items."""
    with client.app.state.sessionmaker() as session:
        snapshot = Snapshot(project_id=uuid.UUID(project_id), name="frozen")
        session.add(snapshot)
        session.flush()
        freeze_snapshot(session, snapshot.id)
        session.commit()
        return list(session.scalars(select(SnapshotItem).where(SnapshotItem.snapshot_id == snapshot.id)))
