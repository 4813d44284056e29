"""`geti-inspect serve`: start the supervised stack (Prefect, workers, MLflow), then the API.

The composition root: it wires settings, the supervisor (infra) and the API app, so it lives
above both. SIGTERM and Ctrl-C stop the API first, then every child; a failure at start stops
what started. The console carries the platform's own lifecycle; third-party chatter (HTTP client
requests, Alembic, uvicorn's access lines, libraries' deprecation warnings) shows only at
`--log-level debug`.
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
from infra.settings import Settings
from infra.supervisor import ManagedProcess, Stack, stop_processes
from infra.supervisor.settler import RowSettler
from infra.supervisor.stack import worker_spec
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
                  "urllib3", "asyncio", "multipart")


class QuietThirdParty(logging.Filter):
    """Drops third-party records below WARNING, whatever levels the libraries set on their own loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(CHATTY_LOGGERS)


# Python warnings (timm's and anomalib's FutureWarnings when the model catalog loads) go to this logger once
# captured: library deprecations are for the platform's developers, not the operator's console.
WARNINGS_LOGGER = "py.warnings"


def configure_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.captureWarnings(True)
    logging.getLogger(WARNINGS_LOGGER).setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.ERROR)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    if numeric > logging.DEBUG:
        for handler in logging.getLogger().handlers:
            handler.addFilter(QuietThirdParty())


def ready_banner(settings: Settings) -> str:
    """The block that ends start-up: every address and folder a user needs."""
    links = ui_links(settings)
    rows = [("API", links.api), ("API docs", f"{links.api}/docs"), ("Prefect UI", links.prefect_ui),
            ("MLflow UI", links.mlflow_ui), ("Data dir", str(settings.resolved_data_dir)),
            ("Log dir", str(settings.resolved_data_dir / "logs"))]
    lines = [f"  {label + ':':<12}{value}" for label, value in rows]
    return "\n".join(["Geti Inspect is ready", *lines, "Press Ctrl-C to stop."])


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
            _Server(config, ready_banner(settings)).run()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        with signals_ignored():
            settler.stop()
            stack.stop()
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


def run_workers(settings: Settings, pools: list[str]) -> None:
    """Workers only, for a machine that adds capacity to an external Prefect API (docs/operations.md)."""
    local = machine_local_settings(settings)
    if local:
        log.warning("this worker can only serve a platform on this machine and data dir: %s. Another machine needs "
                    "the shared settings (docs/operations.md, 'Adding a machine')", "; ".join(local))
    stack = Stack(settings)
    processes = [ManagedProcess(worker_spec(settings, pool, settings.resolved_data_dir / "logs",
                                            prefect_api=stack.prefect_api_url, mlflow_uri=stack.mlflow_uri,
                                            options=stack.options), stack.options.restart_policy) for pool in pools]
    try:
        with termination_as_interrupt():
            for process in processes:
                process.start()
            log.info("workers for pool(s) %s polling %s", ", ".join(pools), stack.prefect_api_url)
            while True:
                for process in processes:
                    process.check()
                time.sleep(0.5)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        with signals_ignored():
            stop_processes(processes)
