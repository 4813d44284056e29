"""A model trained by automatic selection on the session platform, shared by every test that needs a
trained model with an evaluation record. Load as a plugin::

    pytest_plugins = ["tests.integration.selection_fixtures"]

One training job per session: two tiny candidates (PaDiM on the two offline backbones, 1/8 + 1/16
scale) on synthetic parts: 14 good (the split rule sends at least 4 to `eval`) and 4 defective.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.media_support import part_files, upload
from tests.platform_fixtures import Platform, wait_job

MID_LAYERS = ["blocks.2", "blocks.4"]
CANDIDATES = [{"architecture": "padim", "parameters": {"backbone": "mobilenetv2_100", "layers": MID_LAYERS}},
              {"architecture": "padim", "parameters": {"backbone": "tf_efficientnet_lite0", "layers": MID_LAYERS}}]
JOB_TIMEOUT_S = 600  # two PaDiM fits + exports + scoring on 2 busy cores


@pytest.fixture(scope="session")
def auto_trained(platform: Platform, platform_client, part_images: Path) -> dict:
    """{"project_id", "model_id", "job", "seconds"} of a completed automatic selection."""
    client = platform_client
    project_id = client.post("/api/projects", json={"name": "Auto line"}).json()["id"]
    assert upload(client, project_id, part_files(part_images, "Free", 14)).status_code == 201
    defects = part_files(part_images, "Crack", 2) + part_files(part_images, "Blowhole", 2)
    assert upload(client, project_id, defects, label="anomalous").status_code == 201
    started = time.monotonic()
    accepted = client.post(f"/api/projects/{project_id}/train", json={
        "model_name": "auto v1", "architecture": "auto", "candidates": CANDIDATES})
    assert accepted.status_code == 202, accepted.text
    job = wait_job(client, accepted.json()["job_id"], {"completed", "failed", "cancelled"}, JOB_TIMEOUT_S)
    assert job["status"] == "completed", job
    return {"project_id": project_id, "model_id": accepted.json()["model_id"], "job": job,
            "seconds": time.monotonic() - started}
