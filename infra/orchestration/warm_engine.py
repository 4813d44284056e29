"""A flow process that imports the flows' modules ahead of time, then runs flow runs.

`python -m prefect.engine` spends most of a short job importing torch, anomalib and Prefect.
The warm worker (`infra.orchestration.warm_worker`) starts this module in one of two roles:

- a fork server (`--fork-server FD`, the default): it imports once, then forks a child per flow
  run (`infra.orchestration.fork_server`);
- a spare: it imports, then waits for one JSON line on stdin, the run's environment and
  working directory.

Either way the process that runs the flow then *is* Prefect's engine process for that run: same
environment, same `prefect.engine` entry point, same exit code, same signals.

    python -m infra.orchestration.warm_engine [--fork-server FD] flows.training.flow flows.export ...
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import contextvars
import functools
import importlib
import json
import logging
import os
import runpy
import socket
import ssl
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

from infra.orchestration.fork_server import ForkServer

log = logging.getLogger(__name__)


# What every flow run imports once it has been forked: Prefect's engine (`prefect.engine` itself is run
# by `run_engine` as __main__, so only its imports are here), the anyio backend its event-loop threads
# load, and rich's emoji table (its console log handler's first record). Imported after the fork, a
# module is private to each run, and importing touches (and so copies) pages of the objects it links to:
# on a live line these imports took 8 MiB of private memory; preloaded, the line ends 2-4 MiB smaller
# (much of what an import touches, the run touches later anyway).
ENGINE_IMPORTS = (
    "prefect._internal.control_listener",
    "prefect._internal.metrics",
    "prefect.flow_engine",
    "anyio._backends._asyncio",
    "rich._emoji_codes",
)


def preload(modules: list[str]) -> None:
    """Import what the runs will need; a module that fails is left for the run to report.

    A flow module keeps its heavy imports inside the flow function (deployments and the API import
    it cheaply) and names them in `WARM_START_IMPORTS`; those are imported here too, as is what
    Prefect's engine imports in every run (`ENGINE_IMPORTS`).
    """
    pending = [*modules, *ENGINE_IMPORTS]
    while pending:
        name = pending.pop(0)
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the flow run itself will fail with the real error
            log.exception("warm engine could not preload %s", name)
            continue
        pending.extend(getattr(module, "WARM_START_IMPORTS", ()))
    _configure_orm_mappers()
    _build_prefect_settings()
    share_client_tls_contexts()


def _build_prefect_settings() -> None:
    """Every run builds Prefect's settings again from its environment (`run_engine`).

    The first build in a process fills caches that later builds reuse (pydantic-settings' sources, the
    ABCs' subclass checks on every field's type): built once here, every forked run shares them instead
    of writing its own copy (measured: the run's build then adds about 4 MiB of private memory, not 7).
    """
    from prefect.settings import Settings

    Settings()


def _configure_orm_mappers() -> None:
    """SQLAlchemy sets up the ORM's mappers on their first use, about 0.1 s of every run's start.

    Done once here, every forked run inherits it (pure in-memory state: no connection is opened).
    """
    from sqlalchemy.orm import configure_mappers

    import infra.database.models  # noqa: F401 - registers the platform's mappers

    configure_mappers()


def run_engine(environment: dict[str, str], cwd: str, module: str = "prefect.engine") -> None:
    """Become `python -m prefect.engine` for the flow run named in `environment`."""
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)
    sys.argv = [sys.argv[0]]  # the engine reads the flow run id from PREFECT__FLOW_RUN_ID
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import Settings

    skip_heartbeat_join()
    watch_suspension_in_background()
    # Prefect read its settings at import time, from the worker's environment: re-read them from
    # the run's, as Prefect's own subprocess launcher does.
    with SettingsContext(profile=get_settings_context().profile, settings=Settings()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*found in sys.modules", category=RuntimeWarning)
        runpy.run_module(module, run_name="__main__", alter_sys=True)


def skip_heartbeat_join() -> None:
    """The flow engine stops its heartbeat thread without waiting for it (`join_on_exit=False`).

    The thread sleeps in 1 s steps, so the join kept every finished run's process (and its worker
    slot) about 0.5-1 s longer. The thread is a daemon that sends nothing once the run's state is
    final, and this process ends right after the run (`exit_without_teardown`).
    """
    import prefect.flow_engine

    send_heartbeats = prefect.flow_engine._send_heartbeats

    @contextlib.contextmanager
    def without_join(engine: object, join_on_exit: bool = True) -> Iterator[None]:
        with send_heartbeats(engine, join_on_exit=False):
            yield

    prefect.flow_engine._send_heartbeats = without_join


def share_client_tls_contexts() -> None:
    """Prefect's API clients share one verifying TLS context per CA file instead of building one each.

    Each `PrefectClient`/`SyncPrefectClient` builds its own `ssl.create_default_context(cafile=...)`,
    which parses the whole CA bundle: about 0.75 MiB of private memory per client, and a live line holds
    four. A verifying context is never changed after it is built and may serve any number of
    connections, so one per CA file is enough. Called by `preload`, the one for Prefect's default bundle
    (certifi's) is built before the fork: every run then shares it. Prefect's unverified context
    (`PREFECT_API_TLS_INSECURE_SKIP_VERIFY`, built without arguments and then changed) is still built per
    client.
    """
    import certifi
    from prefect.client import orchestration

    verifying = functools.cache(lambda cafile: ssl.create_default_context(cafile=cafile))

    def create_default_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        # Prefect's verifying context is asked for with `cafile=` alone; any other call gets a context of its own.
        if args or list(kwargs) != ["cafile"] or kwargs["cafile"] is None:
            return ssl.create_default_context(*args, **kwargs)
        return verifying(kwargs["cafile"])

    module = types.ModuleType("ssl")  # the client module's own view of `ssl`; every other module keeps the real one
    module.__dict__.update(vars(ssl))
    module.create_default_context = create_default_context  # type: ignore[attr-defined]
    orchestration.ssl = module  # type: ignore[attr-defined]
    create_default_context(cafile=certifi.where())


def watch_suspension_in_background() -> None:
    """The flow starts without waiting for Prefect's suspension observer to connect.

    Prefect's engine opens an events websocket per run and blocks the start (before RUNNING) until
    the observer has read the run's state: 0.1-0.2 s of every start, 1.5 s when the Prefect server
    is busy. Here the observer starts the same way in a thread of its own and the flow goes on.
    Nothing is missed: once connected, the observer reads the run's current state, so a suspension
    requested in between is still seen at the run's next orchestration step.
    """
    import prefect.flow_engine

    observe = prefect.flow_engine.observe_flow_run_suspension

    @contextlib.contextmanager
    def in_background(flow_run_id: object, suspension_request: object, polling_interval: float = 10) -> Iterator[None]:
        leave = threading.Event()

        def watch() -> None:
            with observe(flow_run_id, suspension_request, polling_interval):
                leave.wait()

        context = contextvars.copy_context()  # the engine's settings and client context, as Prefect's own thread has
        threading.Thread(target=context.run, args=(watch,), name="suspension-observer", daemon=True).start()
        try:
            yield
        finally:
            leave.set()  # not joined: the run's process ends right after its flow (`exit_without_teardown`)

    prefect.flow_engine.observe_flow_run_suspension = in_background


def _next_order(fork_server_fd: int | None) -> dict | None:
    """The run this process is to become: forked from the server, or read from stdin by a spare."""
    if fork_server_fd is not None:
        return ForkServer(socket.socket(fileno=fork_server_fd)).serve()
    line = sys.stdin.readline()
    sys.stdin.close()
    return json.loads(line) if line.strip() else None  # empty: the worker stopped before handing us a run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="warm_engine")
    parser.add_argument("--fork-server", type=int, metavar="FD", help="serve forks over this connected socket")
    parser.add_argument("modules", nargs="*")
    arguments = parser.parse_args(argv)
    preload(arguments.modules)
    order = _next_order(arguments.fork_server)
    if order is None:
        return 0
    try:
        run_engine(order["env"], order["cwd"], order.get("module", "prefect.engine"))
    except SystemExit as stop:
        exit_without_teardown(_exit_code(stop))
    exit_without_teardown(0)


def _exit_code(stop: SystemExit) -> int:
    """The status `sys.exit(...)` would give: None is 0, an int itself, anything else is printed and 1."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def exit_without_teardown(code: int) -> NoReturn:
    """Python's exit steps that matter to a run, then `os._exit`.

    Non-daemon threads are joined and the atexit handlers run (Prefect drains its logs and events
    there) as at any exit. What is skipped is tearing the interpreter down: collecting every
    module's objects and running the native destructors of torch, OpenVINO and TBB. That kept a
    finished run's process, and so its worker slot, alive about 1.4 s longer (measured on a
    snapshot job), and OpenVINO's thread teardown occasionally aborted there.
    """
    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter calls first at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))  # a run never returns here: it leaves through exit_without_teardown
