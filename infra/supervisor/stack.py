"""The supervised stack behind `serve`: Prefect server, work pools and workers, MLflow server.

With `prefect_api_url` / `mlflow_tracking_uri` set, the matching servers (and, for Prefect, the
workers) are external and nothing is started for them here; deployments and the crash
automation are still applied to the external Prefect API. `serve_workers` picks which pools get a
local worker ("none": every job runs on hosts that joined). Once the platform is exposed
(`Settings.exposed`), the supervised servers bind beyond loopback and require the credentials kept
in the data dir (`infra/credentials.py`): Prefect's API auth string, MLflow's basic-auth app.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
from prefect.client.orchestration import SyncPrefectClient

from infra.credentials import ServiceAuth, ServiceCredentials, client_auth, load_or_create_credentials
from infra.orchestration.client import prefect_api_url, prefect_client
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
from infra.supervisor import mlflow_auth
from infra.supervisor.environment import prefect_client_env, prefect_server_env, worker_env
from infra.supervisor.orphans import STACK_ENV, end_processes, find_leftovers, stack_marker
from infra.supervisor.process import ChildSpec, ManagedProcess, RestartPolicy, remember_descendants, stop_processes
from infra.tracking import tracking_uri

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]
ORPHANED_RUN_MESSAGE = "The platform was stopped abruptly (serve killed) while this job ran; it ended at the restart"
TRAINING_POOL = "training"  # snapshot, training and export flows (prefect.yaml); live pipelines use "inference"
INFERENCE_POOL = "inference"
# Prefect's CLI with a calmer background-task loop; the old one is the first leftover a restart ends.
PREFECT_SERVER_MODULE = "infra.orchestration.prefect_server"
POOLS = (TRAINING_POOL, INFERENCE_POOL)
# `serve --workers`: the pools that get a worker on the serving machine itself.
LOCAL_WORKERS = {"all": POOLS, "training": (TRAINING_POOL,), "inference": (INFERENCE_POOL,), "none": ()}


class StackError(RuntimeError):
    """A component did not come up."""


@dataclass(frozen=True)
class StackOptions:
    pools: tuple[str, ...] = POOLS
    # Heartbeats every 30 s (Prefect's minimum); a run silent for crash_after_s turns CRASHED (None: the
    # setting INSPECT_JOB_CRASH_AFTER_S).
    heartbeat_seconds: int = 30
    crash_after_s: float | None = None
    # How often a worker asks Prefect for runs besides the asks Prefect's event stream triggers (a run
    # scheduled, a slot freed: warm_worker.py), which start a job within a fraction of a second. Each ask is a
    # request plus two background writes in Prefect's server: at 1 s the two idle workers cost ~2 % of a core.
    worker_query_seconds: float = 10.0
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
        self.crash_after_s = self.options.crash_after_s or settings.job_crash_after_s
        # Local workers only beside a local Prefect: with an external one, workers are other machines' business.
        self.local_pools = LOCAL_WORKERS[settings.serve_workers] if self.local_prefect else ()
        # Exposed: the supervised servers want the credentials kept in the data dir; external servers take
        # whatever the operator gave this process (the tools' own variables).
        self.credentials: ServiceCredentials | None = (
            load_or_create_credentials(settings.resolved_data_dir)
            if settings.exposed and (self.local_prefect or self.local_mlflow) else None)
        self.auth = client_auth(settings, self.credentials)
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
        # Their Prefect server first: a flow process ended while it still answers records its own "aborted by a
        # termination signal", where the crash marking below tells the user the platform stopped abruptly.
        prefect = leftovers.running(PREFECT_SERVER_MODULE)
        end_processes(prefect)
        end_processes([process for process in leftovers.orphans if process not in prefect])
        try:
            if self.local_prefect:
                self.servers["prefect"] = ManagedProcess(self._prefect_server_spec(), self.options.restart_policy)
            if self.local_mlflow:
                self.servers["mlflow"] = ManagedProcess(self._mlflow_server_spec(), self.options.restart_policy)
            for process in self.servers.values():
                process.start()
            self._wait_healthy({"prefect": self._prefect_health, "mlflow": self._mlflow_health})
            with self._prefect_client() as client:
                ensure_work_pools(client, list(self.options.pools))
                ensure_crash_automation(client, self.crash_after_s)
                crashed = crash_flow_runs(client, list(self.options.pools), leftovers.pids, ORPHANED_RUN_MESSAGE)
                if crashed:
                    log.warning("%d job(s) died with the previous supervisor: marked crashed", crashed)
            apply_deployments(self.prefect_api_url, env=self.auth.client_env())
            for pool in self.local_pools:
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
                remember_descendants(self.processes())  # so stop() also ends flows of a crashed worker

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
        checks = service_health_checks(self.prefect_api_url, self.mlflow_uri, self.options.pools, self.auth)
        checks |= {"prefect": self._prefect_health, "mlflow": self._mlflow_health}
        for pool, process in self.workers.items():
            checks[f"worker:{pool}"] = process.status
        return checks

    def _prefect_health(self) -> tuple[bool, str]:
        return self._component_health("prefect", f"{self.prefect_api_url}/health")

    def _mlflow_health(self) -> tuple[bool, str]:
        return self._component_health("mlflow", f"{self.mlflow_uri}/health")

    def _component_health(self, name: str, url: str) -> tuple[bool, str]:
        process = self.servers.get(name)
        if process is not None and not process.alive:
            return process.status()
        ok, detail = endpoint_health(url)
        if not ok:
            return ok, detail
        return True, f"{detail} ({process.status()[1] if process is not None else 'external'})"

    def _prefect_client(self) -> SyncPrefectClient:
        return prefect_client(self.prefect_api_url, self.auth)

    # -- children --------------------------------------------------------------------------

    def _prefect_server_spec(self) -> ChildSpec:
        home = self.settings.resolved_data_dir / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **prefect_client_env(self.prefect_api_url),
            **prefect_server_env(),
            STACK_ENV: stack_marker(self.settings.resolved_data_dir),
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_UI_API_URL": self.prefect_api_url,
            "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
        }
        if self.credentials is not None:
            # Basic auth on every route but /health; the UI asks for the auth string once per browser. Its
            # API address is relative, so the UI works from whatever host name a browser used.
            env |= {"PREFECT_SERVER_API_AUTH_STRING": self.credentials.prefect_auth_string,
                    "PREFECT_UI_API_URL": "/api", **self.auth.client_env()}
        return ChildSpec("prefect-server", [sys.executable, "-m", PREFECT_SERVER_MODULE, "server",
                                            "start", "--host", self.settings.resolved_services_host,
                                            "--port", str(self.settings.prefect_port)],
                         env, cwd=REPO_ROOT, log_path=self._logs / "prefect-server.log", term_grace_s=10)

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
        app: list[str] = []
        if self.credentials is not None:
            if mlflow_auth.sync_admin_password(data, self.credentials):
                log.info("MLflow: the admin password now matches the rotated credentials")
            env |= mlflow_auth.server_env(data, self.credentials)
            app = ["--app-name", "basic-auth"]
        return ChildSpec("mlflow-server", [sys.executable, "-m", "mlflow", "server", *app,
                                           "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
                                           "--artifacts-destination", artifacts, "--workers", "1",
                                           "--host", self.settings.resolved_services_host,
                                           "--port", str(self.settings.mlflow_port)],
                         env, log_path=self._logs / "mlflow-server.log", term_grace_s=10)

    def _worker_spec(self, pool: str) -> ChildSpec:
        return worker_spec(self.settings, pool, self._logs, prefect_api=self.prefect_api_url,
                           mlflow_uri=self.mlflow_uri, options=self.options, auth=self.auth)


@functools.cache
def _health_http() -> httpx.Client:
    """One client for every health check: a client of its own per check spent ~34 ms of CPU building its TLS
    context. No kept-alive connections, so a server restarted between checks is asked afresh, as before."""
    return httpx.Client(timeout=2.0, limits=httpx.Limits(max_keepalive_connections=0))


def endpoint_health(url: str) -> tuple[bool, str]:
    """A server's unauthenticated health route answers 200 (Prefect's and MLflow's need no credentials)."""
    try:
        response = _health_http().get(url)
    except httpx.HTTPError as error:
        return False, f"{url} unreachable: {error}"
    if response.status_code != 200:
        return False, f"{url} answered {response.status_code}"
    return True, url.removesuffix("/health")


def pool_health(prefect_api: str, pool: str, auth: ServiceAuth) -> HealthCheck:
    """Some worker (of any machine) polls `pool`: Prefect reads the pool READY."""
    def check() -> tuple[bool, str]:
        with prefect_client(prefect_api, auth) as client:
            status = client.read_work_pool(pool).status
        ready = status is not None and status.value == "READY"
        return ready, f"pool {pool!r} {'has an online worker' if ready else 'has no online worker'}"

    return check


def service_health_checks(prefect_api: str, mlflow_uri: str, pools: Iterable[str], auth: ServiceAuth
                          ) -> dict[str, HealthCheck]:
    """Health of services this process does not run: what an API started alone (`geti-inspect api`) reports."""
    checks: dict[str, HealthCheck] = {"prefect": lambda: endpoint_health(f"{prefect_api}/health"),
                                      "mlflow": lambda: endpoint_health(f"{mlflow_uri}/health")}
    for pool in pools:
        checks[f"worker:{pool}"] = pool_health(prefect_api, pool, auth)
    return checks


def worker_name(pool: str, supervisor_pid: int | None = None) -> str:
    """`<host>-<pool>-<supervisor pid>`: unique per machine and per `serve`/`worker` process, so the Prefect UI
    (work pool page, the runs' worker events) tells which machine ran a job."""
    return f"{os.uname().nodename}-{pool}-{supervisor_pid if supervisor_pid is not None else os.getpid()}"


def worker_spec(settings: Settings, pool: str, log_dir: Path | None, *, prefect_api: str, mlflow_uri: str,
                options: StackOptions, auth: ServiceAuth | None = None) -> ChildSpec:
    """`prefect worker start` for a pool (the warm worker); its environment reaches every flow process it starts."""
    env = worker_env(settings, prefect_api, mlflow_uri, query_seconds=options.worker_query_seconds,
                     heartbeat_seconds=options.heartbeat_seconds)
    env |= (auth or ServiceAuth()).client_env()
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
