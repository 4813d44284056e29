"""A second training machine: `geti-inspect worker --pool training` beside `serve`, sharing only settings.

`serve` runs on PostgreSQL and an S3 API (moto) with one job per worker at a time; a second
`geti-inspect worker` process starts from its own folder with its own data dir and the addresses of
the database, the S3 API, Prefect and MLflow, as another machine would. Trainings submitted through
the API must all complete, spread over both workers (Prefect's record of which worker took each run),
with their models ready and their files readable through the API, whichever worker wrote them.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from infra.supervisor.stack import TRAINING_POOL, worker_name
from tests.integration.databases import fresh_postgres_database
from tests.integration.media_support import part_files
from tests.integration.s3_server import moto_server
from tests.machines import FAST_TRAINING, SharedState, serve, worker, workers_that_ran
from tests.platform_fixtures import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]

# Two: each worker takes one run at a time, so with both online the second run has to go to the other one.
TRAININGS = 2
FINAL = ("completed", "failed", "cancelled")


def _finished(http: httpx.Client, job_ids: list[str]) -> dict[str, dict] | None:
    jobs = {job_id: http.get(f"/jobs/{job_id}").json() for job_id in job_ids}
    return jobs if all(job["status"] in FINAL for job in jobs.values()) else None


def _archives(http: httpx.Client, model_ids: list[str]) -> dict[str, zipfile.ZipFile]:
    """Each model's OpenVINO archive through the API: export jobs (all at once) pack the IR the training stored."""
    exports = {}
    for model_id in model_ids:
        response = http.get(f"/models/{model_id}/export", params={"format": "openvino"})
        assert response.status_code == 202, response.text
        exports[model_id] = response.json()["job_id"]
    jobs = wait_for(lambda: _finished(http, list(exports.values())), 300, 1.0, "the export jobs")
    archives = {}
    for model_id, job_id in exports.items():
        assert jobs[job_id]["status"] == "completed", jobs[job_id]
        response = http.get(f"/models/{model_id}/export", params={"format": "openvino"})
        assert response.status_code == 200, response.text
        archives[model_id] = zipfile.ZipFile(io.BytesIO(response.content))
    return archives


def test_jobs_spread_over_a_second_machine_and_all_complete(tmp_path: Path, part_images: Path):
    with fresh_postgres_database() as database_url, moto_server(tmp_path / "moto.log") as s3:
        shared = SharedState(database_url, s3).env()
        serve_env = {**shared, "INSPECT_TRAINING_CONCURRENCY": "1"}
        with serve(tmp_path / "serve-data", serve_env, tmp_path / "serve.log") as platform:
            machine_dir = tmp_path / "machine-2"
            machine_env = {**shared, **platform.join_env(), "INSPECT_TRAINING_CONCURRENCY": "1"}
            with worker(machine_dir, machine_env, tmp_path / "worker.log") as second, \
                    httpx.Client(base_url=platform.api_url, timeout=120) as http:
                project = http.post("/projects", json={"name": "two machines"}).json()
                for label, files in (("normal", part_files(part_images, "Free", 8)),
                                     ("anomalous", part_files(part_images, "Crack", 2))):
                    uploaded = http.post(f"/projects/{project['id']}/media", data={"label": label},
                                         files=[("files", (name, data, "image/jpeg")) for name, data in files])
                    assert uploaded.status_code == 201, uploaded.text
                accepted = []
                for index in range(TRAININGS):
                    response = http.post(f"/projects/{project['id']}/train",
                                         json={"model_name": f"m{index}", **FAST_TRAINING})
                    assert response.status_code == 202, response.text
                    accepted.append(response.json())
                job_ids = [item["job_id"] for item in accepted]
                jobs = wait_for(lambda: _finished(http, job_ids), 900, 2.0, "the trainings")

                for job in jobs.values():
                    assert job["status"] == "completed", job
                ran_on = workers_that_ran(platform.prefect_api_url, job_ids)
                print(f"trainings ran on: {sorted(ran_on.values())}")
                assert set(ran_on) == set(job_ids), ran_on
                assert set(ran_on.values()) == {worker_name(TRAINING_POOL, platform.process.pid),
                                                worker_name(TRAINING_POOL, second.pid)}, ran_on

                model_ids = [item["model_id"] for item in accepted]
                for model_id in model_ids:
                    model = http.get(f"/models/{model_id}").json()
                    assert model["status"] == "ready", model
                for archive in _archives(http, model_ids).values():
                    suffixes = {Path(name).suffix for name in archive.namelist()}
                    assert {".xml", ".bin"} <= suffixes, archive.namelist()
            # The second machine kept nothing of the platform's state on its disk: all went to S3.
            assert not (machine_dir / "storage").exists()
            assert (machine_dir / "logs" / f"worker-{TRAINING_POOL}.log").exists()
