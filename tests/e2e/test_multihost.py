"""The platform across hosts with no shared disk: a server, two training hosts and a line host.

Four hosts are network namespaces on one private bridge (`tests/netns.py`), each with its own data
dir and home, and none sees another's folders. The server host runs PostgreSQL (a private cluster
on its address, password required), an S3 API (moto) and `geti-inspect serve --host <address>
--workers none` with an API key; its Prefect and MLflow therefore require the credentials `serve`
generated. The other hosts join with the one command, `geti-inspect worker --server ... --api-key
... --pool ...`, and get everything else from the API. Then: two trainings submitted together run
on both training hosts (one run at a time each), both models are exported through the API, and a
line runs on the line host from a video file on that host's disk, sending webhooks to a receiver on
the server host; a captured frame comes back through the API. A third
training's host is killed mid-training: the job ends `failed` within the crash timeout, and a fourth
training completes on the other training host. From a worker host, each service refuses a request
without credentials. The timeline is printed (and kept in `timeline.txt`).

Skips, naming the reason, where hosts cannot be made (not root, no `ip`, no PostgreSQL binaries,
no moto_server); with INSPECT_TEST_REQUIRE_SERVICES=1 (CI) it fails instead.
"""

from __future__ import annotations

import io
import os
import secrets
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from infra.credentials import PREFECT_AUTH_ENV, load_credentials
from infra.orchestration.setup import pool_jobs
from tests.integration.media_support import part_files
from tests.integration.pipeline_helpers import WebhookReceiver, class_images, frames_from, write_video
from tests.machines import DUMMY_AWS, FAST_TRAINING, machine_env, moto_binary, workers_that_ran
from tests.netns import Host, Network
from tests.netns import unavailable as namespaces_unavailable
from tests.platform_fixtures import wait_for
from tests.private_postgres import private_postgres
from tests.private_postgres import unavailable as postgres_unavailable
from tests.services import require_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

API_PORT, PREFECT_PORT, MLFLOW_PORT, S3_PORT = 8000, 4200, 5000, 9000
CRASH_AFTER_S = 60  # heartbeats every 30 s; what tests/platform_fixtures.py uses too
FINAL = ("completed", "failed", "cancelled")


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def __call__(self, what: str) -> float:
        at = time.monotonic() - self.started
        self.events.append((at, what))
        print(f"[{at:7.1f} s] {what}", flush=True)
        return at

    def text(self) -> str:
        return "\n".join(f"{at:7.1f} s  {what}" for at, what in self.events)


class HostClient:
    """HTTP from one host (its network namespace): the API with the key, or any URL."""

    def __init__(self, host: Host, api_url: str, key: str) -> None:
        self.host = host
        self.api = host.call(httpx.Client, base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.host.call(self.api.get, path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.host.call(self.api.post, path, **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return self.host.call(self.api.delete, path)

    def raw(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.host.call(httpx.request, method, url, timeout=30, **kwargs)

    def job(self, job_id: str) -> dict:
        return self.get(f"/jobs/{job_id}").json()

    def wait_job(self, job_id: str, timeout: float, statuses: tuple[str, ...] = FINAL) -> dict:
        return wait_for(lambda: (job := self.job(job_id))["status"] in statuses and job, timeout, 1.0,
                        f"job {job_id} to reach {statuses}")  # type: ignore[return-value]


def _host_env(host: Host, **extra: str) -> dict[str, str]:
    """A clean machine: no platform setting, its own home and temp folder."""
    for folder in ("home", "tmp"):
        (host.root / folder).mkdir(parents=True, exist_ok=True)
    return machine_env({"HOME": str(host.root / "home"), "TMPDIR": str(host.root / "tmp"), **extra})


def _log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


def _healthy(operator: HostClient) -> bool:
    try:
        return operator.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def _join(host: Host, server_url: str, key: str, pool: str, logs: Path) -> tuple[Any, Path]:
    log_path = logs / f"{host.name}.log"
    process = host.popen([sys.executable, "-m", "api.cli", "worker", "--server", server_url, "--api-key", key, "--pool",
                          pool, "--data-dir", str(host.root / "data")], _host_env(host), log_path)
    return process, log_path


def _worker_of(log_path: Path) -> str:
    """The worker name a joined host printed (`  worker <name>: pool ...`)."""
    for line in log_path.read_text().splitlines():
        if line.strip().startswith("worker ") and ": pool " in line:
            return line.strip().split()[1].rstrip(":")
    raise AssertionError(f"no worker line in {log_path}")


def _ran_on(server: Host, prefect_api: str, job_id: str, timeout: float = 30) -> str:
    return wait_for(lambda: server.call(workers_that_ran, prefect_api, [job_id]).get(job_id), timeout, 1.0,
                    "Prefect's record of the worker that took the run")  # type: ignore[return-value]


def _refused_without_credentials(client: HostClient, server: Host, database_url: str) -> dict[str, int | str]:
    """What each service answers a request from `client`'s host that carries no credentials."""
    base = f"http://{server.address}"
    answers: dict[str, int | str] = {
        "api": client.raw("GET", f"{base}:{API_PORT}/api/projects").status_code,
        "prefect": client.raw("POST", f"{base}:{PREFECT_PORT}/api/flow_runs/filter", json={}).status_code,
        "mlflow": client.raw("GET", f"{base}:{MLFLOW_PORT}/api/2.0/mlflow/experiments/search",
                             params={"max_results": 1}).status_code,
    }
    url = make_url(database_url)
    try:
        client.host.call(psycopg.connect, f"host={url.host} port={url.port} user={url.username} dbname={url.database} "
                                          "connect_timeout=5").close()
        answers["database"] = "connected"
    except psycopg.OperationalError as error:
        answers["database"] = "refused: no password" if "no password" in str(error) else str(error)
    return answers


def _upload_parts(operator: HostClient, project_id: str, part_images: Path) -> None:
    for label, files in (("normal", part_files(part_images, "Free", 8)),
                         ("anomalous", part_files(part_images, "Crack", 2))):
        uploaded = operator.post(f"/projects/{project_id}/media", data={"label": label},
                                 files=[("files", (name, data, "image/jpeg")) for name, data in files])
        assert uploaded.status_code == 201, uploaded.text


def _train(operator: HostClient, project_id: str, name: str) -> dict:
    response = operator.post(f"/projects/{project_id}/train", json={"model_name": name, **FAST_TRAINING})
    assert response.status_code == 202, response.text
    return response.json()


def _trained(operator: HostClient, project_id: str, name: str, timeline: Timeline, prefect_api: str
             ) -> tuple[dict, str]:
    """Submit a training, wait until it completes; (the accepted body, the worker that ran it)."""
    accepted = _train(operator, project_id, name)
    timeline(f"training {name} submitted")
    job = operator.wait_job(accepted["job_id"], 900)
    assert job["status"] == "completed", job
    ran_on = _ran_on(operator.host, prefect_api, accepted["job_id"])
    timeline(f"training {name} completed on {ran_on}")
    return accepted, ran_on


def _trained_at_once(operator: HostClient, project_id: str, names: tuple[str, ...], timeline: Timeline,
                     prefect_api: str) -> list[tuple[dict, str]]:
    """Submit trainings together, wait until all complete; [(the accepted body, the worker that ran it)]."""
    accepted = [_train(operator, project_id, name) for name in names]
    timeline(f"trainings {', '.join(names)} submitted together")
    ran = []
    for name, body in zip(names, accepted, strict=True):
        job = operator.wait_job(body["job_id"], 900)
        assert job["status"] == "completed", job
        ran.append((body, _ran_on(operator.host, prefect_api, body["job_id"])))
        timeline(f"training {name} completed on {ran[-1][1]}")
    return ran


def _exports(operator: HostClient, model_ids: list[str], timeout: float) -> dict[str, zipfile.ZipFile]:
    """Each model's OpenVINO archive through the API; the export jobs are submitted together."""
    jobs = {}
    for model_id in model_ids:
        response = operator.get(f"/models/{model_id}/export", params={"format": "openvino"})
        assert response.status_code == 202, response.text
        jobs[model_id] = response.json()["job_id"]
    archives = {}
    for model_id, job_id in jobs.items():
        job = operator.wait_job(job_id, timeout)
        assert job["status"] == "completed", job
        archive = operator.get(f"/models/{model_id}/export", params={"format": "openvino"})
        assert archive.status_code == 200, archive.text
        archives[model_id] = zipfile.ZipFile(io.BytesIO(archive.content))
    return archives


def _control_endpoint(server: Host, database_url: str, active_id: str) -> str:
    """The line's control endpoint, as the API reads it (the database; no API response carries it)."""
    url = make_url(database_url)
    dsn = f"host={url.host} port={url.port} user={url.username} password={url.password} dbname={url.database}"

    def read() -> str:
        with psycopg.connect(dsn) as connection:
            return connection.execute("SELECT control_url FROM active_pipelines WHERE id = %s",
                                      [uuid.UUID(active_id)]).fetchone()[0]

    return server.call(read)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Network]:
    missing = (namespaces_unavailable() or postgres_unavailable()
               or (None if moto_binary() else "moto_server is not installed (the dev extra)"))
    require_service("The multi-host network", missing is None, missing or "")
    with Network(tmp_path / "hosts") as network:
        for name in ("server", "train-1", "train-2", "line-1"):
            network.add(name)
        network.seal()
        yield network


def test_hosts_join_train_run_a_line_and_survive_a_dead_training_host(  # noqa: PLR0915 - one scenario, in order
        hosts: Network, tmp_path: Path, part_images: Path, monkeypatch: pytest.MonkeyPatch):
    timeline = Timeline()
    server, train_1, train_2, line_host = (hosts.hosts[name] for name in ("server", "train-1", "train-2", "line-1"))
    logs = tmp_path / "logs"
    logs.mkdir()
    key = secrets.token_urlsafe(24)
    server_url = f"http://{server.address}:{API_PORT}"
    prefect_api = f"http://{server.address}:{PREFECT_PORT}/api"
    line_video = line_host.root / "data" / "line" / "parts.avi"
    try:
        with ExitStack() as stack:
            database_url = stack.enter_context(private_postgres(server, hosts.subnet, _host_env(server),
                                                                logs / "postgres.log"))
            stack.enter_context(_Process(server.popen(
                [str(moto_binary()), "-H", server.address, "-p", str(S3_PORT)], _host_env(server), logs / "moto.log")))
            timeline(f"server host {server.address}: private PostgreSQL and the S3 API up")
            serve_env = _host_env(server, INSPECT_API_KEY=key, INSPECT_DATABASE_URL=database_url,
                                  INSPECT_STORAGE_BACKEND="s3", INSPECT_S3_ENDPOINT_URL=f"http://{server.address}:{S3_PORT}",
                                  INSPECT_JOB_CRASH_AFTER_S=str(CRASH_AFTER_S),
                                  INSPECT_ALLOWED_PATHS=str(line_video.parent), **DUMMY_AWS)
            stack.enter_context(_Process(server.popen(
                [sys.executable, "-m", "api.cli", "serve", "--host", server.address, "--port", str(API_PORT),
                 "--workers", "none", "--data-dir", str(server.root / "data")], serve_env, logs / "serve.log")))
            operator = HostClient(server, f"{server_url}/api", key)
            wait_for(lambda: _log_has(logs / "serve.log", "Geti Inspect is ready"), 600, 1.0, "serve to start")
            timeline("serve ready (API, Prefect, MLflow on the server's address; no local workers)")
            banner = (logs / "serve.log").read_text()
            assert f'sign in: "inspect:" + prefect_password from {server.root / "data"}' in banner, banner[-3000:]
            credentials = load_credentials(server.root / "data")
            assert credentials is not None and credentials.prefect_password not in banner
            monkeypatch.setenv(PREFECT_AUTH_ENV, credentials.prefect_auth_string)  # the test reads Prefect's records

            joined = {host.name: _join(host, server_url, key, pool, logs)
                      for host, pool in ((train_1, "training"), (train_2, "training"), (line_host, "inference"))}
            for name, (process, log_path) in joined.items():
                stack.enter_context(_Process(process))
                wait_for(lambda p=process, path=log_path: _log_has(path, "Joined http://") or p.poll() is not None,
                         600, 1.0, f"{name} to join")
                assert process.poll() is None, log_path.read_text()[-3000:]
                timeline(f"{name} joined as {_worker_of(log_path)}")
            for name, pool in (("train-1", "training"), ("line-1", "inference")):  # what each host says it will run
                assert f"pool {pool!r}, runs {', '.join(pool_jobs(pool))} jobs" in joined[name][1].read_text()
            assert "training" in pool_jobs("training") and pool_jobs("inference") == ["inference"]
            wait_for(lambda: _healthy(operator), 300, 1.0, "every pool to have an online worker")
            timeline("health 200: both pools have online workers")

            refused = _refused_without_credentials(HostClient(train_1, f"{server_url}/api", "wrong"), server,
                                                   database_url)
            timeline(f"from train-1 without credentials: {refused}")
            assert refused == {"api": 401, "prefect": 401, "mlflow": 401, "database": "refused: no password"}

            project = operator.post("/projects", json={"name": "three hosts"}).json()["id"]
            _upload_parts(operator, project, part_images)
            # Two trainings at once: each training host takes one run at a time, so they spread over both.
            trained = _trained_at_once(operator, project, ("m1", "m1b"), timeline, prefect_api)
            assert {host.split("-training-")[0] for _, host in trained} == {"train-1", "train-2"}, trained
            first = trained[0][0]
            # Each model's files, whichever host wrote them, come back through the API (exports at once).
            for model_id, archive in _exports(operator, [accepted["model_id"] for accepted, _ in trained],
                                              600).items():
                assert {".xml", ".bin"} <= {Path(name).suffix for name in archive.namelist()}, model_id
            timeline("both exports completed (their files through the API)")

            line_video.parent.mkdir(parents=True, exist_ok=True)
            write_video(line_video, frames_from(class_images(part_images, "MT_Free", 12)
                                                + class_images(part_images, "MT_Crack", 4)))
            receiver = server.call(WebhookReceiver, 0, server.address)
            stack.callback(receiver.close)
            source = operator.post(f"/projects/{project}/sources", json={
                "type": "video_file", "name": "Line video", "config": {"path": str(line_video), "loop": True}}).json()
            sink = operator.post(f"/projects/{project}/sinks", json={
                "type": "webhook", "name": "Server hook", "config": {"url": receiver.url, "cooldown_s": 0}}).json()
            pipeline = operator.post(f"/projects/{project}/pipelines", json={
                "name": "Line 1", "source_id": source["id"], "sink_id": sink["id"], "model_id": first["model_id"],
                "config": {"threshold": 0.0, "fps": 5}})
            assert pipeline.status_code == 201, pipeline.text
            started = operator.post("/active-pipelines", json={"pipeline_id": pipeline.json()["id"]})
            assert started.status_code == 201, started.text
            active_id = started.json()["id"]
            timeline("line started")
            running = wait_for(lambda: (row := operator.get(f"/active-pipelines/{active_id}").json())["status"]
                               in ("running", "failed", "stopped") and row, 300, 1.0, "the line to run")
            assert running["status"] == "running", running  # type: ignore[index]
            timeline("line running on line-1")
            hooks = wait_for(lambda: receiver.successful()[2:] and receiver.successful(), 120, 0.5,
                             "webhooks on the server host")
            timeline(f"{len(hooks)} webhook events received on the server host")  # type: ignore[arg-type]
            assert {event["active_pipeline_id"] for event in hooks} == {active_id}  # type: ignore[union-attr]
            capture = operator.post(f"/active-pipelines/{active_id}/capture", json={})
            assert capture.status_code == 201, capture.text
            control = _control_endpoint(server, database_url, active_id)
            assert control.startswith(f"http://{line_host.address}:"), control
            unauthenticated = HostClient(train_1, f"{server_url}/api", "wrong").raw("GET", f"{control}/status")
            assert unauthenticated.status_code == 401
            timeline(f"capture through the API from {control}; without its token it answers 401 to train-1")
            assert (line_host.root / "data" / "cache" / "models" / first["model_id"]).is_dir()
            assert operator.delete(f"/active-pipelines/{active_id}").status_code == 204
            timeline("line stopped")

            second = _train(operator, project, "m2")
            timeline("training m2 submitted")
            wait_for(lambda: (job := operator.job(second["job_id"]))["status"] == "running" and job["progress"] > 0,
                     600, 0.5, "training 2 to be under way")
            doomed_worker = _ran_on(server, prefect_api, second["job_id"])
            doomed = train_1 if doomed_worker.startswith("train-1") else train_2
            survivor = train_2 if doomed is train_1 else train_1
            killed = doomed.kill()
            killed_at = timeline(f"training m2 under way on {doomed_worker}: {doomed.name} killed ({killed} processes)")
            failed = operator.wait_job(second["job_id"], CRASH_AFTER_S + 120)
            failed_after = timeline(f"training m2 {failed['status']}: {failed['message']}") - killed_at
            assert failed["status"] == "failed", failed
            assert failed_after <= CRASH_AFTER_S + 30, failed_after
            model = wait_for(lambda: (row := operator.get(f"/models/{second['model_id']}").json())["status"]
                             != "training" and row, 60, 1.0, "the model row to settle")
            assert model["status"] == "failed", model  # type: ignore[index]

            _, third_host = _trained(operator, project, "m3", timeline, prefect_api)
            assert third_host.startswith(survivor.name), (third_host, survivor.name)
            for host in (train_1, train_2):
                assert not (host.root / "data" / "storage").exists(), "a worker host kept platform state on its disk"
    finally:
        (tmp_path / "timeline.txt").write_text(timeline.text())
        print(f"\nmulti-host timeline (1-minute load {os.getloadavg()[0]:.1f}):\n{timeline.text()}")


class _Process:
    """A host's process, SIGTERMed (then SIGKILLed) on exit; the hosts' teardown kills what is left."""

    def __init__(self, process: Any) -> None:
        self.process = process

    def __enter__(self) -> Any:
        return self.process

    def __exit__(self, *_exc: object) -> None:
        from tests.conftest import stop_process

        if self.process.poll() is None:
            stop_process(self.process, timeout=30)
