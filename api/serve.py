"""`geti-inspect serve`, `api` and `worker`: the processes of the platform, wired from settings.

`serve` starts the supervised stack (Prefect, workers, MLflow), then the API; `api` serves the API
alone against configured services (a replica); `worker` runs workers only (another machine).
The composition root: it wires settings, credentials, the supervisor (infra) and the API app, so it
lives above both. SIGTERM and Ctrl-C stop the API first, then every child; a failure at start stops
what started. The console carries the platform's own lifecycle; third-party chatter (HTTP client
requests, Alembic, uvicorn's access lines) shows only at `--log-level debug`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

from infra.anomaly.backbones import hub_cache_dir
from infra.anomaly.catalog import warm_up
from infra.credentials import ServiceAuth, ServiceCredentials, client_auth, credentials_path, load_credentials
from infra.orchestration.client import prefect_api_url
from infra.orchestration.setup import pool_jobs
from infra.settings import Settings
from infra.supervisor import ManagedProcess, Stack, StackOptions, stop_processes
from infra.supervisor.settler import RowSettler
from infra.supervisor.stack import POOLS, service_health_checks, worker_name, worker_spec
from infra.tracking import tracking_uri
from infra.ui_links import ui_links

log = logging.getLogger(__name__)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP behave like Ctrl-C, so cleanup runs (uvicorn re-raises the signal it caught)."""
    handled = (signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, _interrupt) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """While stopping the children: a second Ctrl-C must not abandon them half-stopped."""
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# Loggers that narrate every request or plugin: quiet unless debugging.
CHATTY_LOGGERS = ("httpx", "httpcore", "alembic", "uvicorn", "uvicorn.error", "uvicorn.access", "prefect", "mlflow",
                  "urllib3", "asyncio", "multipart", "botocore", "boto3")


class QuietThirdParty(logging.Filter):
    """Drops third-party records below WARNING, whatever levels the libraries set on their own loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(CHATTY_LOGGERS)


def configure_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    if numeric > logging.DEBUG:
        for handler in logging.getLogger().handlers:
            handler.addFilter(QuietThirdParty())


def ready_banner(settings: Settings, credentials: ServiceCredentials | None = None,
                 local_workers: tuple[str, ...] | None = None, title: str = "Geti Inspect is ready") -> str:
    """The block that ends start-up: every address and folder a user needs, how to sign in where asked, and
    (for `serve`: `local_workers`) which workers run here."""
    links = ui_links(settings)
    kept = credentials_path(settings.resolved_data_dir)
    rows = [("Console", f"{links.api.removesuffix('/api')}/ui/"), ("API", links.api), ("API docs", f"{links.api}/docs"),
            ("Prefect UI", links.prefect_ui)]
    if credentials is not None and settings.prefect_api_url is None:
        rows.append(("", f'sign in: "{credentials.prefect_user}:" + prefect_password from {kept}'))
    rows.append(("MLflow UI", links.mlflow_ui))
    if credentials is not None and settings.mlflow_tracking_uri is None:
        rows.append(("", f'sign in: user "{credentials.mlflow_user}", mlflow_password from {kept}'))
    rows += [("Data dir", str(settings.resolved_data_dir)), ("Log dir", str(settings.resolved_data_dir / "logs"))]
    if local_workers is not None:
        rows.append(("Workers", f"{', '.join(local_workers)} on this machine" if local_workers
                     else "none on this machine: jobs run on hosts that joined"))
    if settings.exposed:
        rows.append(("Join", f"geti-inspect worker --server {links.api.removesuffix('/api')} --api-key <key> "
                             "--pool training|inference --data-dir <dir>"))
    lines = [f"  {label + ':' if label else '':<12}{value}" for label, value in rows]
    return "\n".join([title, *lines, "Press Ctrl-C to stop."])


class _Server(uvicorn.Server):
    """uvicorn, announcing the platform once it listens."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self.banner = banner

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            log.info("\n%s", self.banner)


def run_platform(settings: Settings, log_level: str = "info") -> None:
    from api.app import create_app

    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(settings)
    stack.auth.install()  # this process's clients (jobs index, settler, MLflow calls) present the credentials
    warn_unprotected_api(settings)
    settler = RowSettler(settings)
    # anomalib's model classes and the backbone introspection take ~12 s to load: do it while the stack
    # starts, not on the first training request. Joined before the API serves, so no request imports concurrently.
    catalog = threading.Thread(target=warm_up, args=(hub_cache_dir(settings.resolved_data_dir),),
                               name="model-catalog", daemon=True)
    catalog.start()
    try:
        with termination_as_interrupt():
            stack.start()
            settler.start()
            catalog.join()
            app = create_app(settings, health_checks=stack.health_checks())
            log.info("starting the API on %s:%d", settings.host, settings.port)
            # log_config=None: uvicorn's loggers go through ours (format and levels from configure_logging).
            debug = log_level == "debug"
            config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                                    log_level="debug" if debug else "warning", access_log=debug)
            _Server(config, ready_banner(settings, stack.credentials, stack.local_pools)).run()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        with signals_ignored():
            settler.stop()
            stack.stop()
        log.info("stopped")


def warn_unprotected_api(settings: Settings) -> None:
    if settings.exposed and settings.api_key is None:
        log.warning("the API listens beyond loopback without INSPECT_API_KEY: anyone who reaches %s:%d can read and "
                    "change everything, and no host can join (docs/operations.md, threat model)", settings.host,
                    settings.port)


def run_api(settings: Settings, log_level: str = "info") -> None:
    """One API process alone against the configured database and services: a replica behind a load balancer.

    It supervises nothing. Credentials come from the tools' variables, else from the data dir's kept
    credentials (an API beside `serve` on its data dir). Of several replicas on one PostgreSQL, one keeps
    the jobs index in step with Prefect; migrations run once (docs/deployment.md).
    """
    from api.app import create_app

    auth = client_auth(settings, load_credentials(settings.resolved_data_dir))
    auth.install()
    warn_unprotected_api(settings)
    checks = service_health_checks(prefect_api_url(settings), tracking_uri(settings), POOLS, auth)
    app = create_app(settings, health_checks=checks)
    debug = log_level == "debug"
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                            log_level="debug" if debug else "warning", access_log=debug)
    try:
        with termination_as_interrupt():
            _Server(config, ready_banner(settings, title="Geti Inspect API is ready")).run()
    except KeyboardInterrupt:
        log.info("stopped")


def machine_local_settings(settings: Settings) -> list[str]:
    """What in these settings reaches only this machine: fine for a worker beside `serve` on the same data dir,
    wrong on another machine, whose jobs would then write where the API never looks (docs/operations.md)."""
    found = []
    if settings.prefect_api_url is None:
        found.append(f"INSPECT_PREFECT_API_URL is unset (polling Prefect on 127.0.0.1:{settings.prefect_port})")
    if settings.mlflow_tracking_uri is None:
        found.append(f"INSPECT_MLFLOW_TRACKING_URI is unset (MLflow on 127.0.0.1:{settings.mlflow_port})")
    if settings.resolved_database_url.startswith("sqlite"):
        found.append(f"the database is the SQLite file {settings.resolved_database_url.removeprefix('sqlite:///')}")
    if settings.storage_backend == "local":
        found.append(f"storage is the local folder {settings.resolved_data_dir / 'storage'}")
    return found


def run_workers(settings: Settings, pools: list[str], auth: ServiceAuth | None = None,
                announce: str | None = None) -> None:
    """Workers only, for a machine that adds capacity to the platform (docs/deployment.md).

    `auth`: the credentials a joined host got from the API (else this process's own variables);
    `announce`: what to print once the workers run.
    """
    if auth is None:
        local = machine_local_settings(settings)
        if local:
            log.warning("this worker can only serve a platform on this machine and data dir: %s. Another machine "
                        "joins with `geti-inspect worker --server` (docs/deployment.md)", "; ".join(local))
    options = StackOptions()
    api_url, mlflow_uri = prefect_api_url(settings), tracking_uri(settings)
    processes = [ManagedProcess(worker_spec(settings, pool, settings.resolved_data_dir / "logs", prefect_api=api_url,
                                            mlflow_uri=mlflow_uri, options=options, auth=auth), options.restart_policy)
                 for pool in pools]
    try:
        with termination_as_interrupt():
            for process in processes:
                process.start()
            log.info("workers for pool(s) %s polling %s", ", ".join(pools), api_url)
            if announce:
                print(announce, flush=True)
            while True:
                for process in processes:
                    process.check()
                time.sleep(0.5)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        with signals_ignored():
            stop_processes(processes)


def join_announcement(server: str, settings: Settings, pools: list[str], server_version: str) -> str:
    """What a joined host prints: where it joined, as which workers, what it runs, where its state goes."""
    from sqlalchemy.engine import make_url

    from api import __version__

    store = f"s3://{settings.s3_bucket}/{settings.s3_prefix}".rstrip("/")
    lines = [f"Joined {server} (Geti Inspect {server_version})"]
    for pool in pools:
        lines.append(f"  worker {worker_name(pool)}: pool {pool!r}, runs {', '.join(pool_jobs(pool))} jobs")
    lines += [f"  Prefect:  {settings.prefect_api_url}", f"  MLflow:   {settings.mlflow_tracking_uri}",
              f"  Database: {make_url(settings.resolved_database_url).render_as_string(hide_password=True)}",
              f"  Objects:  {store} at {settings.s3_endpoint_url or 'AWS'}",
              f"  Data dir: {settings.resolved_data_dir} (logs, job scratch, model cache, backbone weights)"]
    if "inference" in pools:
        lines.append(f"  Live pipelines' control endpoints: {settings.pipeline_control_advertise_host}")
    if server_version != __version__:
        lines.append(f"  WARNING: this host runs Geti Inspect {__version__}: install {server_version} here "
                     "(one version everywhere)")
    return "\n".join(lines)
