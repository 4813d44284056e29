"""The API process keeps start-up's objects out of the cyclic collector's full passes, once.

Run in a fresh interpreter: the freeze is per process, and this test process has its own history.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys, tempfile
from fastapi.testclient import TestClient
from api.app import create_app
from infra.settings import Settings

with tempfile.TemporaryDirectory() as data_dir:
    settings = Settings(data_dir=data_dir, job_index_poll_s=0)
    before = gc.get_freeze_count()
    with TestClient(create_app(settings)) as client:
        health = client.get("/api/health").status_code
    first = gc.get_freeze_count()
    with TestClient(create_app(settings)) as client:  # a second app in the same process is not frozen
        client.get("/api/health")
    print(json.dumps({"before": before, "first": first, "second": gc.get_freeze_count(), "health": health,
                      "torch": "torch" in sys.modules}))
"""


def test_startup_heap_is_frozen_once_and_torch_is_not_imported(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT),
                                              "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["health"] == 200
    assert seen["before"] == 0
    # The modules, FastAPI and SQLAlchemy alone are tens of thousands of tracked objects.
    assert seen["first"] > 50_000
    assert seen["second"] <= seen["first"]  # frozen objects freed by refcount leave the count
    # The API needs only paths from the backbone module; torch would add ~3 s and 150k objects to start-up.
    assert seen["torch"] is False
