"""Shared fixtures: a real app on a temporary data dir, synthetic part images, the MTD tiles, service probes."""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from infra.settings import Settings
from tests.network import port_open
from tests.platform_fixtures import platform, platform_client  # noqa: F401 - session-wide Prefect + MLflow
from tests.synthetic_parts import write_parts

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real MTD tiles, for the accuracy test only; INSPECT_TEST_MTD_DIR moves (or, pointed at nothing, hides) them.
MTD_DIR = Path(os.environ.get("INSPECT_TEST_MTD_DIR") or REPO_ROOT.parent / "shared" / "data" / "mtd")

# Tests make their video files, image folders and sink outputs under pytest's temporary folders: allow
# those for every Settings of this session (servers and workers inherit it). The confinement tests set
# their own, narrower INSPECT_ALLOWED_PATHS.
os.environ.setdefault("INSPECT_ALLOWED_PATHS", str(Path(tempfile.gettempdir()).resolve()))


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; always reaped."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def png_bytes(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (120, 130, 140)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def postgres_url() -> str | None:
    """INSPECT_TEST_POSTGRES_URL when set, else a loopback server with trust auth when one answers."""
    url = os.environ.get("INSPECT_TEST_POSTGRES_URL")
    if url:
        return url
    if port_open("127.0.0.1", 5432):
        return "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    return None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_upload_bytes=5 * 1024 * 1024)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def project(client: TestClient) -> dict:
    response = client.post("/api/projects", json={"name": "Line 1"})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="session")
def part_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic parts (good, cracks, blowholes, scratches, with masks) in the MTD folder layout; ~0.5 s."""
    return write_parts(tmp_path_factory.mktemp("parts"))


@pytest.fixture(scope="session")
def mtd_dir() -> Path:
    """The real MTD tiles: only the accuracy test needs them, and it skips without them."""
    if not MTD_DIR.is_dir():
        pytest.skip(f"MTD data not found at {MTD_DIR}")
    return MTD_DIR
