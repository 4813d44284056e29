"""The platform as an operator starts it on several machines, played on this one.

`geti-inspect serve` (API, Prefect, MLflow and its own workers) and `geti-inspect worker` as a second
machine runs it: its own data dir and working folder, and nothing from `serve`'s disk, only the
settings that point at shared state (database, S3 API, Prefect API, MLflow server). Which worker ran
a job is read back from Prefect's own record (the worker's `submitted-flow-run` event), as the
Prefect UI shows it. No pytest here: `benchmarks/workers.py` uses it too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.network import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
# boto3 needs credentials even for moto; never let a developer's real ones reach a test server.
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
AWS_OVERRIDES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
SUBMITTED = "prefect.worker.submitted-flow-run"
# PaDiM on 1/8 and 1/16 scale features of MobileNetV2 (offline weights): the quickest real training. 32 of the
# 128 features: its IR is 6.5 MB instead of 70 (one inverse covariance per patch), which every job then stores, logs
# to MLflow and packages; a training job used 11-12 CPU-s instead of 14 (measured on the session platform).
FAST_TRAINING = {"architecture": "padim",
                 "parameters": {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "blocks.4"], "n_features": 32}}


@dataclass(frozen=True)
class SharedState:
    """What every machine's settings point at: the database and the object store."""

    database_url: str
    s3_endpoint_url: str | None = None  # None: the local storage folder (one machine only)
    bucket: str = "geti-inspect"

    def env(self) -> dict[str, str]:
        env = {"INSPECT_DATABASE_URL": self.database_url}
        if self.s3_endpoint_url:
            env |= {"INSPECT_STORAGE_BACKEND": "s3", "INSPECT_S3_ENDPOINT_URL": self.s3_endpoint_url,
                    "INSPECT_S3_BUCKET": self.bucket, **DUMMY_AWS}
        return env


@dataclass(frozen=True)
class ServeProcess:
    process: subprocess.Popen
    data_dir: Path
    api_url: str  # http://127.0.0.1:PORT/api
    prefect_api_url: str
    mlflow_uri: str

    def join_env(self) -> dict[str, str]:
        """What another machine sets, beside the shared state, to work for this platform."""
        return {"INSPECT_PREFECT_API_URL": self.prefect_api_url, "INSPECT_MLFLOW_TRACKING_URI": self.mlflow_uri}


def machine_env(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any platform or cloud setting, plus `env`: a clean machine."""
    inherited = {key: value for key, value in os.environ.items()
                 if not key.startswith(("INSPECT_", "PREFECT_", "MLFLOW_")) and key not in AWS_OVERRIDES}
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**inherited, "PYTHONPATH": path, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **env}


def moto_binary() -> Path | None:
    """`moto_server` next to this interpreter (the dev extra installs it), else None."""
    binary = Path(sys.executable).with_name("moto_server")
    return binary if binary.exists() else None


@contextmanager
def s3_api(log_path: Path) -> Iterator[str]:
    """Yield the endpoint URL of a fresh `moto_server` (an S3 API on loopback); stopped and reaped on exit."""
    binary = moto_binary()
    if binary is None:
        raise FileNotFoundError("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: _answers(f"http://127.0.0.1:{port}"), 30, "moto_server to listen", process, log_path,
              interval=0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process, grace_s=10)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


def _wait(predicate: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen, log_path: Path,
          interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}:\n"
                               f"{log_path.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(interval)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(process: subprocess.Popen, grace_s: float = 90) -> None:
    """SIGTERM (the CLI stops its children), SIGKILL to its group if it does not end."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _start(args: list[str], env: Mapping[str, str], cwd: Path, log_path: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "api.cli", *args], cwd=cwd, env=machine_env(env),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def serve(data_dir: Path, env: Mapping[str, str], log_path: Path, start_timeout: float = 300
          ) -> Iterator[ServeProcess]:
    """`geti-inspect serve` on free ports; yields once `/api/health` is 200 (every component, both workers)."""
    api, prefect, mlflow = free_port(), free_port(), free_port()
    env = {"INSPECT_PREFECT_PORT": str(prefect), "INSPECT_MLFLOW_PORT": str(mlflow), **env}
    process = _start(["serve", "--port", str(api), "--data-dir", str(data_dir)], env, REPO_ROOT, log_path)
    platform = ServeProcess(process, data_dir, f"http://127.0.0.1:{api}/api", f"http://127.0.0.1:{prefect}/api",
                            f"http://127.0.0.1:{mlflow}")
    try:
        _wait(lambda: _healthy(platform.api_url), start_timeout, "serve to be healthy", process, log_path)
        yield platform
    finally:
        _stop(process)


@contextmanager
def worker(data_dir: Path, env: Mapping[str, str], log_path: Path, pools: Iterable[str] = ("training",),
           start_timeout: float = 120) -> Iterator[subprocess.Popen]:
    """`geti-inspect worker` run from its own folder (`data_dir`), as on another machine; yields once every
    pool lists it online."""
    from infra.supervisor.stack import worker_name

    pools = list(pools)
    args = ["worker", *[item for pool in pools for item in ("--pool", pool)], "--data-dir", str(data_dir)]
    process = _start(args, env, data_dir, log_path)
    try:
        api_url = env["INSPECT_PREFECT_API_URL"]
        _wait(lambda: all(worker_name(pool, process.pid) in online_workers(api_url, pool) for pool in pools),
              start_timeout, "the worker to come online", process, log_path)
        yield process
    finally:
        _stop(process)


def online_workers(prefect_api_url: str, pool: str) -> set[str]:
    from prefect.exceptions import PrefectHTTPStatusError

    from infra.orchestration.client import prefect_client

    with prefect_client(prefect_api_url) as client:  # with this process's credentials, where Prefect wants them
        try:
            workers = client.read_workers_for_work_pool(pool)
        except PrefectHTTPStatusError as error:
            if error.response.status_code == 404:  # the pool's first worker creates it
                return set()
            raise
        return {item.name for item in workers if item.status is not None and item.status.value == "ONLINE"}


def workers_that_ran(prefect_api_url: str, flow_run_ids: Iterable[str]) -> dict[str, str]:
    """{flow run id: name of the worker that submitted it}, from the workers' `submitted-flow-run` events."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    from infra.orchestration.client import prefect_client

    wanted = {f"prefect.flow-run.{run_id}": str(run_id) for run_id in flow_run_ids}
    found: dict[str, str] = {}
    query = EventFilter(event=EventNameFilter(name=[SUBMITTED]), related=EventRelatedFilter(id=list(wanted)))
    with prefect_client(prefect_api_url) as client:
        page = client.read_events(query, limit=50)
        while True:
            for event in page.events:
                for related in event.related:
                    if related.id in wanted:
                        found[wanted[related.id]] = event.resource.name or event.resource.id
            if page.next_page is None:
                return found
            page = client.read_events_page(page.next_page)
