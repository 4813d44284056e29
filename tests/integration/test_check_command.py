"""`geti-inspect check`: finds rows without bytes and objects without owner, read-only unless --repair.

Runs the real command (a subprocess) on a data dir made by the app, then broken by hand the way
a lost disk, a crashed delete or a stray copy would break it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.database.engine import session_scope
from infra.database.migrate import upgrade
from infra.database.models import Capture, Media, Model, Snapshot, SnapshotItem
from infra.model_files import checkpoint_key, openvino_prefix
from infra.settings import Settings
from infra.storage import blob_key
from tests.conftest import REPO_ROOT, png_bytes

pytestmark = pytest.mark.timeout(120)


def run_check(data_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "INSPECT_DATABASE_URL": ""}
    return subprocess.run([sys.executable, "-m", "api.cli", "check", "--data-dir", str(data_dir), *options],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=90)


def state(data_dir: Path) -> tuple[list[str], list[str]]:
    """Every stored file and every media/capture/snapshot/model row with its status: to prove read-only."""
    files = sorted(str(path.relative_to(data_dir)) for path in (data_dir / "storage").rglob("*") if path.is_file())
    with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
        rows = [f"media {row.id}" for row in session.query(Media)]
        rows += [f"capture {row.id}" for row in session.query(Capture)]
        rows += [f"snapshot {row.id} {row.status}" for row in session.query(Snapshot)]
        rows += [f"model {row.id} {row.status}" for row in session.query(Model)]
    return files, sorted(rows)


@pytest.fixture
def broken(tmp_path: Path) -> dict[str, str]:
    """A data dir with one of each problem; returns the ids and keys that are broken."""
    data_dir = tmp_path / "data"
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        project_id = client.post("/api/projects", json={"name": "Line 1"}).json()["id"]
        images = [png_bytes(color=(index, 9, 9)) for index in range(4)]
        files = [("files", (f"{index}.png", data, "image/png")) for index, data in enumerate(images)]
        items = client.post(f"/api/projects/{project_id}/media", data={"label": "normal"}, files=files).json()["items"]
        for item, data in zip(items, images, strict=True):
            item["sha256"] = hashlib.sha256(data).hexdigest()
        store = client.app.state.store
        intact_model, broken_model = uuid.uuid4(), uuid.uuid4()
        with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
            snapshot = Snapshot(project_id=uuid.UUID(project_id), name="s", status="ready", media_count=2)
            session.add(snapshot)
            session.flush()
            session.add_all(SnapshotItem(snapshot_id=snapshot.id, media_id=uuid.UUID(item["id"]), filename="f",
                                         label="normal", sha256=item["sha256"]) for item in items[2:])
            for model_id in (intact_model, broken_model):
                session.add(Model(id=model_id, project_id=uuid.UUID(project_id), name="m", architecture="padim",
                                  status="ready"))
                for key in ("model.xml", "model.bin"):
                    store.put(openvino_prefix(model_id) + key, b"ir")
                store.put(checkpoint_key(model_id), b"ckpt")
            snapshot_id = str(snapshot.id)
        # The breakage: a media blob lost, a snapshot-only blob lost (its media row deleted first), a model
        # file lost, and objects that nothing owns.
        store.delete(blob_key(items[0]["sha256"]))
        client.delete(f"/api/media/{items[3]['id']}")  # the snapshot keeps the blob...
        store.delete(blob_key(items[3]["sha256"]))  # ...which is then lost anyway
        store.delete(openvino_prefix(broken_model) + "model.bin")
        orphan_blob = blob_key("ab" * 32)
        store.put(orphan_blob, b"nobody's")
        store.put(f"models/{uuid.uuid4()}/checkpoint/model.ckpt", b"left behind")
        store.put("stray/copy.bin", b"?")
    return {"data_dir": str(data_dir), "media": items[0]["id"], "snapshot": snapshot_id, "model": str(broken_model),
            "orphan_blob": orphan_blob, "intact_model": str(intact_model)}


def test_check_names_each_broken_item_and_changes_nothing(broken: dict[str, str]) -> None:
    data_dir = Path(broken["data_dir"])
    before = state(data_dir)
    result = run_check(data_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.stdout
    for item in ("media", "snapshot", "model", "orphan_blob"):
        assert broken[item] in report, (item, report)
    assert "stray/copy.bin" in report and "models/" in report
    assert broken["intact_model"] not in report
    assert "6 problem(s): 0 repaired, 6 left" in report
    assert state(data_dir) == before  # read-only


def test_repair_fixes_what_check_found(broken: dict[str, str]) -> None:
    data_dir = Path(broken["data_dir"])
    repaired = run_check(data_dir, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    # 6, and the thumbnail of the media row the repair removed: nobody's once the row is gone.
    assert "7 problem(s): 7 repaired, 0 left" in repaired.stdout
    files, rows = state(data_dir)
    assert f"media {broken['media']}" not in rows
    assert f"snapshot {broken['snapshot']} failed" in rows and f"model {broken['model']} failed" in rows
    assert f"model {broken['intact_model']} ready" in rows
    assert not any("stray" in path or broken["orphan_blob"] in path for path in files)
    again = run_check(data_dir)
    assert again.returncode == 0 and again.stdout.startswith("OK"), again.stdout


def test_a_database_behind_the_latest_migration_is_reported_and_migrated_on_repair(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    upgrade(f"sqlite:///{data_dir / 'inspect.db'}", "0005_jobs_index")
    result = run_check(data_dir)
    assert result.returncode == 1 and "0005_jobs_index" in result.stdout and "latest is" in result.stdout
    assert run_check(data_dir, "--repair").returncode == 0
    assert run_check(data_dir).stdout.startswith("OK")


def test_a_data_dir_without_a_database_is_not_created(tmp_path: Path) -> None:
    result = run_check(tmp_path / "nothing")
    assert result.returncode == 2 and "no database" in result.stderr
    assert not (tmp_path / "nothing").exists()
