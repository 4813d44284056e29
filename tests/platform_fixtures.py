"""One real platform for the whole test session: Prefect server + workers + MLflow server.

Started once (about 20 s) through the same `Stack` that `geti-inspect serve` uses, on free ports
and a temporary data dir. The workers' flow processes read the database and storage of
`platform.settings`, so tests that run jobs must use `platform_client` (an app on those settings).

`trained_model` is one real training job on that platform (PaDiM, synthetic parts), run once per
session for every test that needs a ready model rather than a training of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.settings import Settings
from infra.supervisor import Stack, StackOptions
from tests.integration.media_support import part_files, upload
from tests.machines import FAST_TRAINING
from tests.network import free_port

# Crash detection needs heartbeats (every 30 s at least); 60 s of silence keeps the crash test short.
# Workers poll as in the product (woken by Prefect's run events, else every 10 s), so every job of the
# session also tests that its worker is woken.
TEST_STACK = StackOptions(crash_after_s=60)
# A flow's MLflow calls ride out about 15 s of outage in the product (4 retries 2, 4 and 8 s apart: a supervisor
# restart of MLflow). Nothing in the session rides out an MLflow restart, while the MLflow outage test waits out
# every retry of two calls (registration, then the cleanup): 2 retries, about 2 s per call (the factor is an int).
TEST_WORKER_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}
# A job's status is read every half second: each read is a request to the API and, for an unfinished job, to
# Prefect, which share two cores with the job itself.
JOB_POLL_S = 0.5


@dataclass
class Platform:
    settings: Settings
    stack: Stack


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("platform") / "data", prefect_port=free_port(),
                        mlflow_port=free_port(), min_normal_images=4)
    stack = Stack(settings, TEST_STACK)
    with pytest.MonkeyPatch.context() as patch:  # the workers' environment (and their flows') is made at start
        for name, value in TEST_WORKER_ENV.items():
            patch.setenv(name, value)
        stack.start()
    try:
        yield Platform(settings, stack)
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def platform_client(platform: Platform) -> Iterator[TestClient]:
    app = create_app(platform.settings, health_checks=platform.stack.health_checks())
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def platform_api_url(platform: Platform) -> Iterator[str]:
    """One uvicorn API process on the platform's settings (database, storage, Prefect, MLflow) for the
    session, for HTTP from outside the test process: its base URL (``http://127.0.0.1:PORT``)."""
    from infra.supervisor.environment import settings_env
    from tests.integration.api_server import api_server

    with api_server(platform.settings.resolved_data_dir, settings_env(platform.settings), isolated=False) as url:
        yield url


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.25,
             what: str = "condition") -> object:
    """Poll until `predicate()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_job(client: TestClient, job_id: str, statuses: set[str], timeout: float = 120) -> dict:
    def finished() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job.get("status") in statuses else None

    return wait_for(finished, timeout, JOB_POLL_S, what=f"job {job_id} to reach {sorted(statuses)}")  # type: ignore[return-value]


def wait_epoch(client: TestClient, job_id: str, timeout: float = 120) -> dict:
    """Wait until a training job runs and has reported an epoch (it is visibly mid-training)."""
    def training() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        assert job["status"] in ("pending", "running"), job
        return job if job["status"] == "running" and "epoch" in job["metrics"] else None

    return wait_for(training, timeout, JOB_POLL_S, what="training to report an epoch")  # type: ignore[return-value]


# -- one trained model for the session ---------------------------------------------------------------

FINISHED = {"completed", "failed", "cancelled"}


@dataclass
class TrainedModel:
    """A model trained through the API on the session platform, with what its training looked like.

    The project holds 40 good parts (2 of them relabelled `unlabelled`) and 8 blowholes + 8 cracks; the
    training was given no snapshot, so the job made its own. Good parts 40-45 and cracks 8-11 were never
    uploaded: images the model has not seen.
    """

    project: dict
    accepted: dict  # the 202 body of POST /train: job_id, model_id, snapshot_id
    job: dict  # the finished job as the API reported it
    progress: list[float]  # every progress value seen while following the job, in order
    counts: dict[tuple[str, str], int]  # (label, split) -> media count when the training was asked for
    model_name: str = "PaDiM mobilenet"
    normal_images: int = 38  # labelled normal (40 uploaded, 2 relabelled unlabelled)
    anomalous_images: int = 16
    _first_export_answers: dict[tuple[str, str | None], httpx.Response] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.accepted["model_id"]

    def first_export_answer(self, client: TestClient, fmt: str, compression: str | None = None) -> httpx.Response:
        """The API's answer to the first request for this model's `fmt` archive in this session.

        Made now if no test asked for that archive yet; a later call returns the same recorded answer,
        so a test can check what the first request got (202 and a job) whichever test made it.
        """
        key = (fmt, compression)
        if key not in self._first_export_answers:
            params = {"format": fmt, **({"compression": compression} if compression else {})}
            self._first_export_answers[key] = client.get(f"/api/models/{self.model_id}/export", params=params)
        return self._first_export_answers[key]

    def copy_model(self, platform: Platform, project_id: str) -> str:
        """A ready model row in `project_id` with a copy of this model's stored files (IR, checkpoint), as a
        training leaves them: for a test that needs a model nobody has exported yet. Returns its id."""
        from infra.database.engine import session_scope
        from infra.database.models import Model
        from infra.model_files import model_prefix
        from infra.storage import build_store

        store = build_store(platform.settings)
        with session_scope(platform.settings.resolved_database_url) as session:
            original = session.get(Model, uuid.UUID(self.model_id))
            assert original is not None and original.status == "ready"
            twin = Model(project_id=uuid.UUID(project_id), name=f"{original.name} (copy)", status="ready",
                         architecture=original.architecture, parameters=dict(original.parameters or {}),
                         metrics=dict(original.metrics or {}))
            session.add(twin)
            session.flush()
            twin_id = str(twin.id)
        source_prefix = model_prefix(self.model_id)
        for key in store.list(source_prefix):
            if "/exports/" not in key:
                store.put(model_prefix(twin_id) + key[len(source_prefix):], store.get(key))
        return twin_id


def follow_job(client: TestClient, job_id: str, timeout: float = 300) -> tuple[dict, list[float]]:
    """Poll a job to its end, recording every progress value seen."""
    seen: list[float] = []

    def finished() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        seen.append(job["progress"])
        return job if job["status"] in FINISHED else None

    return wait_for(finished, timeout, JOB_POLL_S, what=f"job {job_id}"), seen  # type: ignore[return-value]


@pytest.fixture(scope="session")
def trained_model(platform: Platform, platform_client: TestClient, part_images: Path) -> TrainedModel:
    """A ready PaDiM model, trained once per session through the API (about 20-40 s of the platform's time)."""
    client = platform_client
    project = client.post("/api/projects", json={"name": "Parts e2e"}).json()
    assert upload(client, project["id"], part_files(part_images, "Free", 40)).status_code == 201
    defects = part_files(part_images, "Blowhole", 8) + part_files(part_images, "Crack", 8)
    assert upload(client, project["id"], defects, label="anomalous").status_code == 201
    # Two frames nobody has judged yet: in the snapshot, but never trained on nor evaluated.
    media = client.get(f"/api/projects/{project['id']}/media", params={"label": "normal", "limit": 1000}).json()
    for item in media["items"][:2]:
        assert client.patch(f"/api/media/{item['id']}", json={"label": "unlabelled"}).status_code == 200
    counts = {(label, split): client.get(f"/api/projects/{project['id']}/media",
                                         params={"label": label, "split": split}).json()["total"]
              for label in ("normal", "anomalous") for split in ("train", "eval")}
    trained = TrainedModel(project=project, accepted={}, job={}, progress=[], counts=counts)
    # No snapshot given: the job snapshots the current media first.
    response = client.post(f"/api/projects/{project['id']}/train", json={"model_name": trained.model_name,
                                                                         **FAST_TRAINING})
    assert response.status_code == 202, response.text
    trained.accepted = response.json()
    trained.job, trained.progress = follow_job(client, trained.accepted["job_id"])
    assert trained.job["status"] == "completed", trained.job
    return trained
