"""`geti-inspect serve`: start the supervised stack (Prefect, workers, MLflow), then the API.

SIGTERM and Ctrl-C stop the API first, then every child; a failure at start stops what started.
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

from infra.anomaly.catalog import architecture_names
from infra.settings import Settings
from infra.supervisor import ManagedProcess, Stack, stop_processes
from infra.supervisor.settler import RowSettler
from infra.supervisor.stack import worker_spec

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


def run_platform(settings: Settings) -> None:
    from api.app import create_app

    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(settings)
    settler = RowSettler(settings)
    # anomalib's model classes take ~10 s to import: load them while the stack starts, not on the
    # first training request. Joined before the API serves, so no request imports concurrently.
    catalog = threading.Thread(target=architecture_names, name="model-catalog", daemon=True)
    catalog.start()
    try:
        with termination_as_interrupt():
            stack.start()
            settler.start()
            catalog.join()
            app = create_app(settings, health_checks=stack.health_checks())
            log.info("API:        http://%s:%d/api  (docs: /api/docs)", settings.host, settings.port)
            log.info("Prefect UI: %s", stack.prefect_ui_url)
            log.info("MLflow UI:  %s", stack.mlflow_uri)
            log.info("logs of supervised processes: %s", settings.resolved_data_dir / "logs")
            uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info")).run()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        with signals_ignored():
            settler.stop()
            stack.stop()
        log.info("stopped")


def run_workers(settings: Settings, pools: list[str]) -> None:
    """Workers only, for a machine that adds capacity to an external Prefect API (docs/operations.md)."""
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
