"""A checkpoint planted in the bucket cannot run code on a worker: it is refused, the job names it.

The planted file is a real pickle whose loading would create a marker file (what any code could do
instead). The unit part reads it the way re-export does; the platform part puts it where a model's
checkpoint lives and asks the API for an ONNX export, which re-exports from the checkpoint on a real
worker: the job fails naming the stored file, and the marker never appears.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import torch

from flows.training.build import UnsafeCheckpoint, read_weights
from infra.database.engine import session_scope
from infra.database.models import Model, Project
from infra.model_files import checkpoint_key
from infra.storage import build_store
from tests.platform_fixtures import wait_job

pytestmark = pytest.mark.timeout(180)


class _RunsCode:
    """Unpickling this calls os.system: a stand-in for whatever an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return os.system, (f"touch {self.marker}",)


def planted_checkpoint(path: Path, marker: Path) -> Path:
    """A Lightning-looking checkpoint whose pickle runs a command when loaded unsafely."""
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "hyper_parameters": _RunsCode(marker)}, path)
    return path


def test_a_plain_checkpoint_reads_and_a_planted_pickle_is_refused_without_running(tmp_path: Path) -> None:
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"weight": torch.ones(3)}, "epoch": 1, "hyper_parameters": {"n": [1, 2]}}, plain)
    assert torch.equal(read_weights(plain)["weight"], torch.ones(3))

    marker = tmp_path / "code-ran"
    planted = planted_checkpoint(tmp_path / "planted.ckpt", marker)
    with pytest.raises(UnsafeCheckpoint, match="more than weights"):
        read_weights(planted)
    assert not marker.exists()
    # The same file loaded the old way runs the command: the test would notice a regression.
    torch.load(planted, weights_only=False)
    assert marker.exists()


def test_an_export_job_refuses_a_planted_checkpoint_and_names_it(platform, platform_client, tmp_path: Path) -> None:
    settings = platform.settings
    with session_scope(settings.resolved_database_url) as session:
        project = Project(name="planted")
        session.add(project)
        session.flush()
        model = Model(project_id=project.id, name="m", architecture="padim", status="ready", parameters={})
        session.add(model)
        session.flush()
        model_id = model.id
    marker = tmp_path / f"code-ran-{uuid.uuid4().hex}"
    store = build_store(settings)
    store.put(checkpoint_key(model_id), planted_checkpoint(tmp_path / "model.ckpt", marker).read_bytes())

    accepted = platform_client.get(f"/api/models/{model_id}/export", params={"format": "onnx"})
    assert accepted.status_code == 202, accepted.text
    job = wait_job(platform_client, accepted.json()["job_id"], {"completed", "failed"}, timeout=150)
    assert job["status"] == "failed", job
    assert checkpoint_key(model_id) in (job.get("message") or ""), job
    assert not marker.exists()
