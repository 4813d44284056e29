"""Shared fixtures and helpers. Reuse these in new tests rather than starting your own servers or training.

Fast fixtures (all registered once for the whole session, here or through ``pytest_plugins`` below):

- ``settings``, ``client``, ``project``: an app on a fresh data dir. Its SQLite database is a copy of one
  migrated once per session (``sqlite_template``), and it runs no jobs index poller (no Prefect is
  there to follow). ``make_settings(**fields)`` gives the same for other Settings fields.
- ``database`` (``tests/integration/databases.py``): an empty database at the newest schema, once on
  SQLite and once on PostgreSQL, each copied from a per-session migrated template.
- ``platform``, ``platform_client`` (``tests/platform_fixtures.py``): one Prefect server, its workers and
  an MLflow server for the session (``make test`` runs four xdist workers: the first two start one each, the
  others run no file that uses it, ``tests/platform_workers.py``); tests that run jobs use these.
  ``trained_model``: a ready PaDiM model on that platform (trained once per session on synthetic parts, with
  its training job and MLflow version) for any test that only needs a trained model; ``request_export`` asks
  for an archive of it.
- ``keyed_server`` (``tests/integration/api_server.py``): one uvicorn API process with INSPECT_API_KEY set.
- ``model_dir``, ``part_video``, ``mjpeg_camera``, ``webhook_receiver``, ``mqtt_broker_port``
  (``tests/integration/pipeline_fixtures.py``): a tiny PaDiM OpenVINO model, a video, a camera, receivers.
- ``part_images``: synthetic parts in the MTD layout; ``mtd_dir``: the real tiles (a skip without them), for
  tests marked ``real_data``, which the default run deselects (``make test-real-data`` runs them).

Session fixtures live here or in those plugins, never in a test module: pytest registers a fixture once
per module that defines or imports it, so the suite refuses that at collection (``tests/fixture_scopes.py``).

Services: a test that needs PostgreSQL, an MQTT broker, Chromium/Playwright or moto_server calls
``require_service(name, available, reason)``. It skips when the service is missing, which suits a
laptop, and fails instead when INSPECT_TEST_REQUIRE_SERVICES=1 (set by ``.ci/run``), so CI never
passes by skipping them.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.engine import make_url

from api.app import create_app
from infra.database.migrate import upgrade
from infra.settings import Settings
from infra.supervisor.environment import threading_env
from tests.browser import chromium_available
from tests.network import port_open, share_tls_contexts
from tests.services import REQUIRE_SERVICES_ENV, require_service, services_required  # noqa: F401 - re-exported
from tests.synthetic_parts import write_parts

pytest_plugins = [
    "tests.fixture_scopes",  # refuses session fixtures defined in, or imported into, test modules
    "tests.slow_first",  # files with a slow test run first (the workers overlap them)
    "tests.platform_workers",  # of three workers or more, only the first two run tests that need the platform
    "tests.platform_fixtures",  # platform, platform_client, trained_model, request_export
    "tests.integration.api_server",  # keyed_server
    "tests.integration.databases",  # database (SQLite and PostgreSQL)
    "tests.integration.pipeline_fixtures",  # model_dir, part_video, mjpeg_camera, webhook_receiver, mqtt_broker_port
]

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real MTD tiles, for the accuracy test only (marker real_data: `make test-real-data`, not in `make test`);
# INSPECT_TEST_MTD_DIR moves (or, pointed at nothing, hides) them.
MTD_DIR = Path(os.environ.get("INSPECT_TEST_MTD_DIR") or REPO_ROOT.parent / "shared" / "data" / "mtd")

# Tests make their video files, image folders and sink outputs under pytest's temporary folders: allow
# those for every Settings of this session (servers and workers inherit it). The confinement tests set
# their own, narrower INSPECT_ALLOWED_PATHS.
os.environ.setdefault("INSPECT_ALLOWED_PATHS", str(Path(tempfile.gettempdir()).resolve()))
# The suite's own processes get the threading its flow processes get (OpenMP threads sleep at a barrier): it
# trains in-process too, on several workers at once, where spinning threads burn another worker's core (2 training
# files on 2 workers: 6-10 % more CPU and 8-12 % more time with the spin). Before anything imports torch.
os.environ.update(threading_env())


def pytest_configure(config: pytest.Config) -> None:
    share_tls_contexts()  # the suite's processes poll servers with a client per call: one TLS context for all


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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file at the newest schema, migrated once per session; apps start on copies of it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "inspect.db"
    upgrade(f"sqlite:///{path}")
    return path


def seed_sqlite(settings: Settings, template: Path) -> None:
    """Put a copy of the migrated template where ``settings`` keeps its SQLite database (unless one is there).

    The app still runs its migrations at start; on a database at the newest schema that is a quick no-op.
    """
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return
    target = Path(url.database)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)


@pytest.fixture
def make_settings(tmp_path: Path, sqlite_template: Path) -> Callable[..., Settings]:
    """Settings(**fields) on ``tmp_path / "data"`` (unless given) with a migrated SQLite database in place and,
    unless ``job_index_poll_s`` is given, no jobs index poller: these apps have no Prefect to follow. For the
    same reason a job route answers 503 at once (no connection retries) unless ``prefect_connect_retries`` is given."""
    def make(**fields: object) -> Settings:
        fields.setdefault("data_dir", tmp_path / "data")
        fields.setdefault("job_index_poll_s", 0)
        fields.setdefault("prefect_connect_retries", 0)
        settings = Settings(**fields)  # type: ignore[arg-type]
        seed_sqlite(settings, sqlite_template)
        return settings

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_upload_bytes=5 * 1024 * 1024)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def project(client: TestClient) -> dict:
    response = client.post("/api/projects", json={"name": "Line 1"})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def chromium_installed() -> None:
    """For tests that drive a headless Chromium (``tests/browser.py``)."""
    require_service("Chromium", chromium_available(),
                    "headless Chromium is not installed (Debian: apt-get install chromium)")


@pytest.fixture
def mosquitto_installed() -> None:
    """For tests that start, stop and restart their own MQTT broker process."""
    require_service("mosquitto", shutil.which("mosquitto") is not None,
                    "an MQTT broker on PATH is needed to stop and restart one (Debian: apt-get install mosquitto)")


@pytest.fixture(scope="session")
def part_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic parts (good, cracks, blowholes, scratches, with masks) in the MTD folder layout; ~0.5 s."""
    return write_parts(tmp_path_factory.mktemp("parts"))


@pytest.fixture(scope="session")
def mtd_dir() -> Path:
    """The real MTD tiles: only the accuracy test needs them, and it skips without them (data, not a service)."""
    if not MTD_DIR.is_dir():
        pytest.skip(f"MTD data not found at {MTD_DIR}")
    return MTD_DIR
