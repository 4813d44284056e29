"""Load with nothing lost, one job at a time on the training pool, one export per archive: against a real API process.

20 clients each upload 50 small images (one request per image) while 3 jobs of the training pool are
submitted at once: snapshots, the cheapest job that worker runs (training, snapshot and export jobs
share its INSPECT_TRAINING_CONCURRENCY slots, 1 on the session platform; a training costs ~20 s more
and shows nothing more about the queue). Every upload must be accounted for (rows and blobs match, no
orphan blob), every job must complete, no request may answer 5xx (SQLite's "database is locked"
included), and the worker must run the jobs one after the other, the others shown `pending` with a
message that they wait for a worker.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from infra.blob_gc import REFERENCING_COLUMNS
from infra.database.engine import session_scope
from infra.database.models import Media
from infra.storage import build_store
from tests.platform_fixtures import TrainedModel, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CLIENTS = int(os.environ.get("INSPECT_TEST_LOAD_CLIENTS", "20"))
IMAGES_PER_CLIENT = int(os.environ.get("INSPECT_TEST_LOAD_IMAGES", "50"))
QUEUED_JOBS = 3


def image_bytes(seed: tuple[int, int], size: int = 32) -> bytes:
    """A small PNG whose content is unique to `seed` (so no two uploads share a blob)."""
    image = Image.new("RGB", (size, size), (seed[0] % 256, seed[1] % 256, (seed[0] * 7 + seed[1]) % 256))
    image.putpixel((seed[0] % size, seed[1] % size), (255, 255 - seed[0] % 256, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(http: httpx.Client, project_id: str, name: str, data: bytes) -> httpx.Response:
    return http.post(f"/api/projects/{project_id}/media", files=[("files", (name, data, "image/png"))],
                     data={"label": "normal"})


@dataclass
class LoadRun:
    url: str
    project_id: str
    sent: dict[str, bytes]  # filename -> bytes
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)  # ids of the jobs submitted to the training pool
    jobs: dict[str, dict] = field(default_factory=dict)  # final job per id
    # Each poll of the queued jobs while they ran: {job id: (status, message)}.
    observed: list[dict[str, tuple[str, str | None]]] = field(default_factory=list)
    upload_s: float = 0.0
    jobs_s: float = 0.0


def _client_uploads(url: str, project_id: str, client_index: int, run: LoadRun, lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        for index in range(IMAGES_PER_CLIENT):
            name = f"c{client_index:02d}-{index:03d}.png"
            response = _upload(http, project_id, name, run.sent[name])
            with lock:
                run.statuses[response.status_code] += 1
                if response.status_code >= 500:
                    run.server_errors.append(f"{name}: {response.status_code} {response.text[:200]}")


def _poll_jobs(http: httpx.Client, run: LoadRun) -> dict[str, dict]:
    """Each queued job as Prefect has it now (GET /api/jobs/{id}), one after the other, always in the same order."""
    jobs = {}
    for job_id in list(run.queued):
        response = http.get(f"/api/jobs/{job_id}")
        if response.status_code >= 500:
            run.server_errors.append(f"job poll: {response.status_code} {response.text[:200]}")
            continue
        jobs[job_id] = response.json()
    run.observed.append({job_id: (job["status"], job["message"]) for job_id, job in jobs.items()})
    return jobs


@pytest.fixture(scope="module")
def api_url(platform_api_url: str) -> str:
    return platform_api_url


@pytest.fixture(scope="module")
def load_run(api_url) -> LoadRun:
    url = api_url
    with httpx.Client(base_url=url, timeout=60) as http:
        queue_project = http.post("/api/projects", json={"name": f"queue {uuid.uuid4().hex[:6]}"}).json()
        seeds = [(200 + index, 17 * index) for index in range(6)]
        for seed in seeds:
            assert _upload(http, queue_project["id"], f"n{seed[0]}.png", image_bytes(seed)).status_code == 201
        project = http.post("/api/projects", json={"name": f"load {uuid.uuid4().hex[:6]}"}).json()
        sent = {f"c{client:02d}-{index:03d}.png": image_bytes((client, index))
                for client in range(CLIENTS) for index in range(IMAGES_PER_CLIENT)}
        run = LoadRun(url, project["id"], sent)
        lock = threading.Lock()

        def snapshot(index: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as own:
                response = own.post(f"/api/projects/{queue_project['id']}/snapshots", json={"name": f"queued {index}"})
            with lock:
                assert response.status_code == 201, response.text
                run.queued.append(response.json()["job_id"])

        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS + QUEUED_JOBS) as pool:
            futures = [pool.submit(snapshot, index) for index in range(QUEUED_JOBS)]
            futures += [pool.submit(_client_uploads, url, project["id"], client, run, lock)
                        for client in range(CLIENTS)]
            while not all(future.done() for future in futures):
                if len(run.queued) == QUEUED_JOBS:
                    _poll_jobs(http, run)
                time.sleep(0.25)
            for future in futures:
                future.result()
            run.upload_s = time.monotonic() - started
        print(f"{CLIENTS}x{IMAGES_PER_CLIENT} uploads in {run.upload_s:.1f} s, statuses {dict(run.statuses)}")

        def all_finished() -> bool:
            jobs = _poll_jobs(http, run)
            return len(jobs) == QUEUED_JOBS and all(job["status"] in ("completed", "failed", "cancelled")
                                                    for job in jobs.values())

        wait_for(all_finished, 900, 0.25, "the queued jobs to finish")
        run.jobs_s = time.monotonic() - started
        run.jobs = {job_id: http.get(f"/api/jobs/{job_id}").json() for job_id in run.queued}
        print(f"{QUEUED_JOBS} queued jobs done {run.jobs_s:.1f} s after submission")
        return run


def test_every_upload_is_accounted_for(platform, load_run):
    run = load_run
    assert run.server_errors == []
    assert run.statuses == Counter({201: CLIENTS * IMAGES_PER_CLIENT})
    with httpx.Client(base_url=run.url, timeout=30) as http:
        page = http.get(f"/api/projects/{run.project_id}/media", params={"limit": 1}).json()
    assert page["total"] == CLIENTS * IMAGES_PER_CLIENT

    expected = {hashlib.sha256(data).hexdigest() for data in run.sent.values()}
    with session_scope(platform.settings.resolved_database_url) as session:
        in_project = Media.project_id == uuid.UUID(run.project_id)
        rows = session.execute(select(Media.filename, Media.sha256).where(in_project)).all()
        # Every column that holds a blob (images and defect masks): other tests on this platform store masks.
        referenced = {digest for column in REFERENCING_COLUMNS for digest in session.scalars(select(column))}
    assert sorted(name for name, _ in rows) == sorted(run.sent)
    assert {digest for _, digest in rows} == expected
    stored = {key.rsplit("/", 1)[1] for key in build_store(platform.settings).list("blobs/")}
    assert expected <= stored <= referenced, "blobs that no row refers to"


def test_training_pool_jobs_run_one_at_a_time_and_all_complete(load_run):
    run = load_run
    assert len(run.jobs) == QUEUED_JOBS
    for job in run.jobs.values():
        assert job["status"] == "completed" and job["type"] == "snapshot", job
    # Never two running at once. One poll reads the jobs one after the other, so it can catch a handover as two
    # running (the first read just before it ended, the next just after it started). Two jobs read running in two
    # polls in a row were both running at once: the first stayed running from its first read to its second, and
    # the other's first read fell in between (a job does not return to running).
    for poll, next_poll in itertools.pairwise(run.observed):
        running_through = [job_id for job_id, (status, _) in poll.items()
                           if status == "running" and next_poll.get(job_id, ("", None))[0] == "running"]
        assert len(running_through) <= 1, (poll, next_poll)
    # And a waiting one says why it waits.
    waiting = [message for poll in run.observed for status, message in poll.values() if status == "pending"]
    assert waiting, "no job was ever seen waiting"
    assert all(message and "waiting for a worker" in message for message in waiting), set(waiting)
    spans = sorted((datetime.fromisoformat(job["started_at"]), datetime.fromisoformat(job["finished_at"]))
                   for job in run.jobs.values())
    for (_, first_end), (second_start, _) in zip(spans, spans[1:], strict=False):
        assert second_start >= first_end, spans


def test_concurrent_exports_start_one_job(platform, api_url, trained_model: TrainedModel):
    """Two clients ask for the same missing archive at the same moment: one export job serves both."""
    with httpx.Client(base_url=api_url, timeout=60) as http:
        project_id = http.post("/api/projects", json={"name": f"exports {uuid.uuid4().hex[:6]}"}).json()["id"]
    model_id = trained_model.copy_model(platform, project_id)  # a ready model whose archives nobody has asked for
    barrier = threading.Barrier(2)

    def ask() -> httpx.Response:
        with httpx.Client(base_url=api_url, timeout=60) as http:
            barrier.wait()
            return http.get(f"/api/models/{model_id}/export", params={"format": "openvino"})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: ask(), range(2)))
    assert [answer.status_code for answer in answers] == [202, 202], [answer.text for answer in answers]
    job_ids = {answer.json()["job_id"] for answer in answers}
    assert len(job_ids) == 1, job_ids
    with httpx.Client(base_url=api_url, timeout=60) as http:
        exports = http.get(f"/api/projects/{project_id}/jobs", params={"type": "export"}).json()
        assert [job["id"] for job in exports] == list(job_ids)

        def archive() -> httpx.Response | None:
            response = http.get(f"/api/models/{model_id}/export", params={"format": "openvino"})
            return response if response.status_code == 200 else None

        download = wait_for(archive, 120, 1.0, "the export archive")
        assert download.headers["content-type"] == "application/zip"  # type: ignore[union-attr]
