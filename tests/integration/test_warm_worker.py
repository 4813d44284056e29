"""The warm worker runs each flow run in a process forked by a server that already imported the pool's flows.

Real Prefect server and worker (the session platform); the jobs are snapshots, the quickest flow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest

from infra.orchestration.engine_launchers import engine_processes
from infra.orchestration.setup import WARM_MODULES_ENV, WORKER_START_ENV, pool_modules
from tests.conftest import png_bytes
from tests.integration.media_support import upload
from tests.machines import online_workers
from tests.platform_fixtures import wait_for, wait_job


@pytest.fixture(scope="module")
def small_project(platform_client) -> dict:
    project = platform_client.post("/api/projects", json={"name": "warm worker"}).json()
    images = [(f"part{index}.png", png_bytes(color=(index, 120, 40))) for index in range(3)]
    assert upload(platform_client, project["id"], images).status_code == 201
    return project


def _engines(platform) -> list[psutil.Process]:
    return engine_processes(platform.stack.workers["training"].pid)


def _snapshot_job(client, project_id: str) -> dict:
    created = client.post(f"/api/projects/{project_id}/snapshots", json={"name": "warm"})
    assert created.status_code == 201, created.text
    return wait_job(client, created.json()["job_id"], {"completed", "failed", "cancelled"}, timeout=120)


def _flow_process_pid(platform, job_id: str) -> int:
    run = httpx.get(f"{platform.stack.prefect_api_url}/flow_runs/{job_id}", timeout=10).json()
    return int(run["infrastructure_pid"].rpartition(":")[2])


def test_pool_modules_come_from_prefect_yaml() -> None:
    assert pool_modules("training") == ["flows.snapshot", "flows.training.flow", "flows.export", "flows.retraining",
                                        "flows.dataset_import"]
    assert pool_modules("inference") == ["flows.inference"]
    assert pool_modules("no-such-pool") == []


def test_jobs_run_in_processes_forked_by_one_fork_server(platform, platform_client, small_project) -> None:
    (server,) = wait_for(lambda: _engines(platform), 120, what="the fork server")
    assert "--fork-server" in server.cmdline() and "flows.training.flow" in server.cmdline()

    jobs = [_snapshot_job(platform_client, small_project["id"]) for _ in range(2)]

    assert [job["status"] for job in jobs] == ["completed", "completed"], jobs
    pids = {_flow_process_pid(platform, job["id"]) for job in jobs}
    assert len(pids) == 2 and server.pid not in pids  # each run its own forked process ...
    assert _engines(platform) == [server]  # ... and the same server, still there, serves the next


def test_each_run_is_labelled_with_the_worker_that_ran_it(platform, platform_client, small_project) -> None:
    """The worker sets the labels beside the run's start (not before it): they still arrive, for the Prefect UI."""
    job = _snapshot_job(platform_client, small_project["id"])
    assert job["status"] == "completed", job

    def labels() -> dict:
        run = httpx.get(f"{platform.stack.prefect_api_url}/flow_runs/{job['id']}", timeout=10).json()
        return run["labels"] if "prefect.worker.name" in run["labels"] else {}

    labelled = wait_for(labels, 30, what="the run's worker labels")
    assert labelled["prefect.work-pool.name"] == "training"
    assert labelled["prefect.worker.name"] in online_workers(platform.stack.prefect_api_url, "training")


def test_a_job_still_runs_when_the_fork_server_died(platform, platform_client, small_project) -> None:
    (server,) = wait_for(lambda: _engines(platform), 120, what="the fork server")
    server.kill()
    server.wait(10)

    job = _snapshot_job(platform_client, small_project["id"])

    assert job["status"] == "completed", job
    assert job["progress"] == 1.0
    (replacement,) = _engines(platform)  # started again for that run
    assert replacement.pid != server.pid


def test_a_worker_shows_online_only_once_its_fork_server_has_imported(platform, tmp_path) -> None:
    """A job submitted the moment a worker is online must find the imports done (torch here: the heaviest of a
    training pool's, without the rest, which would cost a third fork server of the platform's size)."""
    pool = "warm-probe"
    env = {**os.environ, "PREFECT_API_URL": platform.stack.prefect_api_url, "PREFECT_WORKER_QUERY_SECONDS": "1",
           WARM_MODULES_ENV: "torch", WORKER_START_ENV: "fork"}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "infra.orchestration.warm_worker", "worker", "start",
                                   "--pool", pool, "--type", "process", "--name", "probe"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "probe" in online_workers(platform.stack.prefect_api_url, pool), 180, interval=0.1,
                 what="the probe worker online")
        (server,) = engine_processes(worker.pid)
        assert any("libtorch" in region.path for region in server.memory_maps()), "online before its imports"
    finally:
        _stop_worker(worker)


def _stop_worker(worker: subprocess.Popen) -> None:
    """As the supervisor stops a worker (infra/supervisor/process.stop_processes): SIGTERM, SIGTERM again (a
    Prefect worker sometimes waits for the second), then SIGKILL; its fork server goes with it."""
    engines = engine_processes(worker.pid)
    for _ in range(2):
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        worker.kill()
        worker.wait()
    for engine in engines:
        if engine.is_running():
            engine.kill()


def test_a_worker_takes_a_new_run_when_prefect_announces_it_not_at_its_next_poll(platform, tmp_path) -> None:
    """Its own poll comes once an hour here: only the event stream's `Scheduled` event can make it ask (a stream
    that is down would make it poll every second, which its log would say)."""
    from prefect.client.schemas.objects import StateType

    from infra.orchestration.client import prefect_client

    pool, api = "event-probe", platform.stack.prefect_api_url
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_WORKER_QUERY_SECONDS": "3600", WORKER_START_ENV: "cold",
           "PREFECT_LOGGING_EXTRA_LOGGERS": "infra"}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "infra.orchestration.warm_worker", "worker", "start",
                                   "--pool", pool, "--type", "process", "--name", "event-probe"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with prefect_client(api) as client:
            wait_for(lambda: "event-probe" in online_workers(api, pool), 180, interval=0.2, what="the worker online")
            wait_for(lambda: all(queue.last_polled for queue in client.read_work_queues(work_pool_name=pool)), 60,
                     what="the worker's first poll")
            flow_id = client.create_flow_from_name("event-probe")
            deployment = client.create_deployment(flow_id=flow_id, name="event-probe", work_pool_name=pool,
                                                  entrypoint="no_such_module.py:no_flow")
            run = client.create_flow_run_from_deployment(deployment)
            taken = wait_for(lambda: client.read_flow_run(run.id).state.type is not StateType.SCHEDULED, 60,
                             interval=0.2, what="the worker to take the run")
        assert taken
        assert "no Prefect event stream" not in (tmp_path / "worker.log").read_text()
    finally:
        _stop_worker(worker)


def test_a_run_cancelled_as_its_process_starts_ends_cancelled(platform, tmp_path) -> None:
    """The cancel lands after the worker read the run (pending) and before the run's flow engine takes it: Prefect
    has it cancelling while the worker starts its process with the run as it read it. Nothing of Prefect's watches
    the run then; the engine finds it cancelling and exits. The run must end cancelled, not stay cancelling (the job
    showed `running` for good: seen in a loaded full suite, then 6 of 16 cancels on a loaded machine)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelling, Pending

    from infra.orchestration.warm_worker import WarmProcessWorker

    (tmp_path / "probe_flow.py").write_text("from prefect import flow\n\n\n@flow\ndef probe() -> int:\n    return 1\n")

    async def scenario() -> tuple[str, str | None]:
        async with get_client() as client, WarmProcessWorker(work_pool_name="cancel-probe") as worker:
            flow_id = await client.create_flow_from_name("probe")
            deployment = await client.create_deployment(
                flow_id=flow_id, name="cancel-probe", work_pool_name="cancel-probe", path=str(tmp_path),
                entrypoint="probe_flow.py:probe", job_variables={"working_dir": str(tmp_path)})
            as_read = await client.create_flow_run_from_deployment(deployment)
            await client.set_flow_run_state(as_read.id, Pending(), force=True)
            await client.set_flow_run_state(as_read.id, Cancelling(message="cancelled through the API"), force=True)
            configuration = await worker.job_configuration.resolve_for_flow_run(  # as the worker's submission does
                as_read, client=client, work_pool=worker.work_pool, worker_name=worker.name)
            await worker.run(as_read, configuration)
            final = (await client.read_flow_run(as_read.id)).state
            return final.type.value, final.message

    with temporary_settings(updates={PREFECT_API_URL: platform.stack.prefect_api_url}):
        state, message = asyncio.run(scenario())
    assert state == "CANCELLED", (state, message)
