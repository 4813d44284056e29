"""The supervised stack behind `serve`: Prefect server, work pools and workers, MLflow server.

With `prefect_api_url` / `mlflow_tracking_uri` set, the matching servers (and, for Prefect, the
workers) are external and nothing is started for them here; deployments and the crash
automation are still applied to the external Prefect API.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from prefect.client.orchestration import SyncPrefectClient

from infra.orchestration.client import prefect_api_url
from infra.orchestration.setup import (
    REPO_ROOT,
    WARM_MODULES_ENV,
    WORKER_START_ENV,
    apply_deployments,
    crash_flow_runs,
    ensure_crash_automation,
    ensure_work_pools,
    pool_modules,
)
from infra.settings import Settings
from infra.supervisor.environment import prefect_client_env, worker_env
from infra.supervisor.orphans import STACK_ENV, end_processes, find_leftovers, stack_marker
from infra.supervisor.process import ChildSpec, ManagedProcess, RestartPolicy, stop_processes
from infra.tracking import tracking_uri

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]
ORPHANED_RUN_MESSAGE = "The platform was stopped abruptly (serve killed) while this job ran; it ended at the restart"
TRAINING_POOL = "training"  # snapshot, training and export flows (prefect.yaml); live pipelines use "inference"
POOLS = (TRAINING_POOL, "inference")


class StackError(RuntimeError):
    """A component did not come up."""


@dataclass(frozen=True)
class StackOptions:
    pools: tuple[str, ...] = POOLS
    # Heartbeats every 30 s (Prefect's minimum); a run silent for crash_after_s turns CRASHED.
    heartbeat_seconds: int = 30
    crash_after_s: float = 90.0
    # How often a worker asks Prefect for runs: half of it, on average, is every job's wait to be taken (1 s:
    # about 0.5 s of it, for one light query per worker per second).
    worker_query_seconds: float = 1.0
    start_timeout_s: float = 180.0
    restart_policy: RestartPolicy = RestartPolicy()


class Stack:
    def __init__(self, settings: Settings, options: StackOptions | None = None) -> None:
        self.settings = settings
        self.options = options or StackOptions()
        self.prefect_api_url = prefect_api_url(settings)
        self.prefect_ui_url = self.prefect_api_url.removesuffix("/api")
        self.mlflow_uri = tracking_uri(settings)
        self.local_prefect = settings.prefect_api_url is None
        self.local_mlflow = settings.mlflow_tracking_uri is None
        self.servers: dict[str, ManagedProcess] = {}
        self.workers: dict[str, ManagedProcess] = {}
        self._monitor: threading.Thread | None = None
        self._stop = threading.Event()
        self._logs = settings.resolved_data_dir / "logs"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start what is local, wait until healthy, configure Prefect, start workers. Idempotent on restart."""
        data = self.settings.resolved_data_dir
        data.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        leftovers = find_leftovers(data)  # of a supervisor killed before it could stop its children
        end_processes(leftovers.orphans)
        try:
            if self.local_prefect:
                self.servers["prefect"] = ManagedProcess(self._prefect_server_spec(), self.options.restart_policy)
            if self.local_mlflow:
                self.servers["mlflow"] = ManagedProcess(self._mlflow_server_spec(), self.options.restart_policy)
            for process in self.servers.values():
                process.start()
            self._wait_healthy({"prefect": self._prefect_health, "mlflow": self._mlflow_health})
            with SyncPrefectClient(self.prefect_api_url) as client:
                ensure_work_pools(client, list(self.options.pools))
                ensure_crash_automation(client, self.options.crash_after_s)
                crashed = crash_flow_runs(client, list(self.options.pools), leftovers.pids, ORPHANED_RUN_MESSAGE)
                if crashed:
                    log.warning("%d job(s) died with the previous supervisor: marked crashed", crashed)
            apply_deployments(self.prefect_api_url)
            if self.local_prefect:
                for pool in self.options.pools:
                    self.workers[pool] = ManagedProcess(self._worker_spec(pool), self.options.restart_policy)
                    self.workers[pool].start()
            self._monitor = threading.Thread(target=self._watch, name="stack-monitor", daemon=True)
            self._monitor.start()
        except BaseException:
            self.stop()
            raise
        log.info("stack ready in %.1f s", time.monotonic() - started)

    def stop(self) -> None:
        """Workers first (their flow processes with them), then the servers."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        stop_processes(self.workers.values())
        stop_processes(self.servers.values())

    def processes(self) -> list[ManagedProcess]:
        return [*self.workers.values(), *self.servers.values()]

    def _watch(self) -> None:
        rounds = 0
        while not self._stop.wait(0.5):
            rounds += 1
            for process in self.processes():
                process.check()
                if rounds % 10 == 0:
                    process.descendants()  # remembered, so stop() also ends flows of a crashed worker

    def _wait_healthy(self, checks: dict[str, HealthCheck]) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        pending = dict(checks)
        while pending:
            for name, check in list(pending.items()):
                if check()[0]:
                    log.info("%s is up", name)
                    del pending[name]
                    continue
                process = self.servers.get(name)
                if process is not None and not process.alive:
                    raise StackError(f"{name} exited with code {process._popen.returncode if process._popen else None}"
                                     f" during start-up:\n{process.log_tail()}")
            if pending and time.monotonic() > deadline:
                raise StackError(f"not healthy after {self.options.start_timeout_s:.0f} s: {', '.join(pending)}")
            if pending:
                time.sleep(0.25)

    # -- health ----------------------------------------------------------------------------

    def health_checks(self) -> dict[str, HealthCheck]:
        checks: dict[str, HealthCheck] = {"prefect": self._prefect_health, "mlflow": self._mlflow_health}
        for pool in self.options.pools:
            checks[f"worker:{pool}"] = self._worker_health(pool)
        return checks

    def _prefect_health(self) -> tuple[bool, str]:
        return self._component_health("prefect", f"{self.prefect_api_url}/health")

    def _mlflow_health(self) -> tuple[bool, str]:
        return self._component_health("mlflow", f"{self.mlflow_uri}/health")

    def _component_health(self, name: str, url: str) -> tuple[bool, str]:
        process = self.servers.get(name)
        if process is not None and not process.alive:
            return process.status()
        try:
            response = httpx.get(url, timeout=2.0)
        except httpx.HTTPError as error:
            return False, f"{url} unreachable: {error}"
        if response.status_code != 200:
            return False, f"{url} answered {response.status_code}"
        where = process.status()[1] if process is not None else "external"
        return True, f"{url.removesuffix('/health')} ({where})"

    def _worker_health(self, pool: str) -> HealthCheck:
        def check() -> tuple[bool, str]:
            process = self.workers.get(pool)
            if process is not None:
                return process.status()
            # External Prefect: some worker must be polling the pool.
            with SyncPrefectClient(self.prefect_api_url) as client:
                status = client.read_work_pool(pool).status
            ready = status is not None and status.value == "READY"
            return ready, f"pool {pool!r} {'has an online worker' if ready else 'has no online worker'}"

        return check

    # -- children --------------------------------------------------------------------------

    def _prefect_server_spec(self) -> ChildSpec:
        home = self.settings.resolved_data_dir / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **prefect_client_env(self.prefect_api_url),
            STACK_ENV: stack_marker(self.settings.resolved_data_dir),
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_UI_API_URL": self.prefect_api_url,
            "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
        }
        return ChildSpec("prefect-server", [sys.executable, "-m", "prefect", "server", "start",
                                            "--host", self.settings.services_host,
                                            "--port", str(self.settings.prefect_port)],
                         env, log_path=self._logs / "prefect-server.log", term_grace_s=10)

    def _mlflow_server_spec(self) -> ChildSpec:
        data = self.settings.resolved_data_dir
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               STACK_ENV: stack_marker(self.settings.resolved_data_dir)}
        if self.settings.storage_backend == "s3":
            prefix = f"{self.settings.s3_prefix.strip('/')}/" if self.settings.s3_prefix.strip("/") else ""
            artifacts = f"s3://{self.settings.s3_bucket}/{prefix}mlartifacts"
            if self.settings.s3_endpoint_url:
                env["MLFLOW_S3_ENDPOINT_URL"] = self.settings.s3_endpoint_url
        else:
            artifacts = str(data / "mlartifacts")
        return ChildSpec("mlflow-server", [sys.executable, "-m", "mlflow", "server",
                                           "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
                                           "--artifacts-destination", artifacts, "--workers", "1",
                                           "--host", self.settings.services_host,
                                           "--port", str(self.settings.mlflow_port)],
                         env, log_path=self._logs / "mlflow-server.log", term_grace_s=10)

    def _worker_spec(self, pool: str) -> ChildSpec:
        return worker_spec(self.settings, pool, self._logs, prefect_api=self.prefect_api_url,
                           mlflow_uri=self.mlflow_uri, options=self.options)


def worker_name(pool: str, supervisor_pid: int | None = None) -> str:
    """`<host>-<pool>-<supervisor pid>`: unique per machine and per `serve`/`worker` process, so the Prefect UI
    (work pool page, the runs' worker events) tells which machine ran a job."""
    return f"{os.uname().nodename}-{pool}-{supervisor_pid if supervisor_pid is not None else os.getpid()}"


def worker_spec(settings: Settings, pool: str, log_dir: Path | None, *, prefect_api: str, mlflow_uri: str,
                options: StackOptions) -> ChildSpec:
    """`prefect worker start` for a pool (the warm worker); its environment reaches every flow process it starts."""
    env = worker_env(settings, prefect_api, mlflow_uri, query_seconds=options.worker_query_seconds,
                     heartbeat_seconds=options.heartbeat_seconds)
    env[WARM_MODULES_ENV] = ",".join(pool_modules(pool))
    env[WORKER_START_ENV] = settings.worker_start
    env[STACK_ENV] = stack_marker(settings.resolved_data_dir)  # flow processes inherit it
    command = [sys.executable, "-m", "infra.orchestration.warm_worker", "worker", "start",
               "--pool", pool, "--name", worker_name(pool)]
    if pool == TRAINING_POOL:
        # The worker takes no more runs than this; the rest stay SCHEDULED (the API shows them pending) until a
        # slot frees. A per-worker limit, unlike the pool's, grows with the workers added on other machines.
        command += ["--limit", str(settings.training_concurrency)]
    return ChildSpec(f"worker-{pool}", command, env, cwd=REPO_ROOT,
                     log_path=log_dir / f"worker-{pool}.log" if log_dir else None, term_grace_s=2)
