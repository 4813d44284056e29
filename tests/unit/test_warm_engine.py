"""Warm engine processes: what they preload, the fork server's protocol, and the spare's replacement.

Real processes throughout: the fork server is `python -m infra.orchestration.warm_engine`, and the
"flow run" it forks is a probe module that reports what it sees instead of Prefect's engine.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import anyio
import psutil
import pytest

from infra.orchestration.engine_launchers import UNKNOWN_EXIT, ForkedEngines, SpareEngine, engine_processes
from infra.orchestration.warm_engine import preload


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = tmp_path / "warmpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "flow.py").write_text('WARM_START_IMPORTS = ("warmpkg.heavy", "warmpkg.broken")\n')
    (root / "heavy.py").write_text("LOADED = True\n")
    (root / "broken.py").write_text("raise ImportError('no such backend here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "warmpkg"
    for name in [name for name in sys.modules if name.startswith("warmpkg")]:
        del sys.modules[name]


def test_preload_follows_warm_start_imports_and_survives_a_broken_module(package, caplog,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client import orchestration

    monkeypatch.setattr(orchestration, "ssl", orchestration.ssl)  # preload shares its TLS contexts: undone after
    preload([f"{package}.flow", f"{package}.missing"])

    assert f"{package}.heavy" in sys.modules
    assert f"{package}.broken" not in sys.modules
    failed = {record.getMessage() for record in caplog.records}
    assert failed == {f"warm engine could not preload {package}.{name}" for name in ("broken", "missing")}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_spare_engine_keeps_one_spare_and_replaces_a_dead_one() -> None:
    spares = SpareEngine(["json"])
    await spares.start()
    await spares.run_ended()
    (waiting,) = engine_processes(os.getpid())

    waiting.kill()
    for _ in range(200):  # asyncio's child watcher reaps it; psutil must not (the worker would never learn)
        await anyio.sleep(0.05)
        if not psutil.pid_exists(waiting.pid):
            break
    await anyio.sleep(0.05)
    taken = await spares.take()  # the dead spare is not handed out: a new process is
    assert taken.pid != waiting.pid and taken.returncode is None

    await spares.run_ended()
    assert len(engine_processes(os.getpid())) == 2
    await taken.aclose()  # stdin closed without an order: the spare ends on its own, cleanly
    assert taken.returncode == 0
    await spares.close()
    assert engine_processes(os.getpid()) == []


PROBE = """
import atexit, json, os, sys, time
from pathlib import Path
atexit.register(lambda: Path(os.environ["PROBE_OUT"] + ".atexit").write_text("ran"))
Path(os.environ["PROBE_OUT"]).write_text(json.dumps({
    "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "seen": os.environ.get("PROBE_SEEN"),
    "preloaded": "forkprobe_heavy" in sys.modules}))
time.sleep(float(os.environ.get("PROBE_SLEEP", "0")))
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def probe_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Modules the fork server can import (it inherits PYTHONPATH) and fork into."""
    (tmp_path / "forkprobe.py").write_text(PROBE)
    (tmp_path / "forkprobe_heavy.py").write_text("LOADED = True\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return tmp_path


def _order(out: Path, cwd: Path, **env: str) -> dict:
    return {"env": {**os.environ, "PROBE_OUT": str(out), **env}, "cwd": str(cwd), "module": "forkprobe"}


async def _wait_for_file(path: Path) -> dict:
    for _ in range(400):
        if path.exists() and path.read_text():
            return json.loads(path.read_text())
        await anyio.sleep(0.05)
    raise AssertionError(f"{path} never written")


@pytest.mark.anyio
async def test_fork_server_forks_each_run_with_its_environment_and_reports_exits(probe_path: Path) -> None:
    engines = ForkedEngines(["forkprobe_heavy"])
    await engines.start()  # returns once the imports are done
    try:
        (server,) = engine_processes(os.getpid())
        workdir = probe_path / "work"
        workdir.mkdir()

        first = await engines.launch(_order(probe_path / "first.json", workdir, PROBE_SEEN="one", PROBE_EXIT="3"))
        second = await engines.launch(_order(probe_path / "second.json", probe_path, PROBE_SEEN="two"))

        assert await first.wait() == 3 and await second.wait() == 0
        seen = [json.loads((probe_path / name).read_text()) for name in ("first.json", "second.json")]
        assert [report["seen"] for report in seen] == ["one", "two"]
        assert [report["pid"] for report in seen] == [first.pid, second.pid]
        assert {report["ppid"] for report in seen} == {server.pid}  # forked, not spawned by the worker
        assert all(report["preloaded"] for report in seen)  # the server's imports came along
        assert Path(seen[0]["cwd"]) == workdir.resolve()
        assert (probe_path / "first.json.atexit").read_text() == "ran"  # it left through Python's exit steps
        assert engine_processes(os.getpid()) == [server]  # the same server serves every run
    finally:
        await engines.close()


@pytest.mark.anyio
async def test_a_forked_run_can_be_stopped_by_its_pid(probe_path: Path) -> None:
    """Prefect cancels a run with SIGTERM to the pid it was handed, then SIGKILL."""
    engines = ForkedEngines([])
    await engines.start()
    try:
        run = await engines.launch(_order(probe_path / "run.json", probe_path, PROBE_SLEEP="60"))
        await _wait_for_file(probe_path / "run.json")
        os.kill(run.pid, signal.SIGTERM)
        assert await run.wait() == -signal.SIGTERM
    finally:
        await engines.close()


@pytest.mark.anyio
async def test_a_dead_fork_server_is_replaced_and_its_running_child_still_ends(probe_path: Path) -> None:
    engines = ForkedEngines([])
    await engines.start()
    try:
        (server,) = engine_processes(os.getpid())
        running = await engines.launch(_order(probe_path / "orphan.json", probe_path, PROBE_SLEEP="1"))
        await _wait_for_file(probe_path / "orphan.json")
        server.kill()

        # Its exit code is lost with the server; the worker still learns that it ended.
        assert await running.wait() == UNKNOWN_EXIT

        after = await engines.launch(_order(probe_path / "after.json", probe_path, PROBE_EXIT="5"))
        assert await after.wait() == 5
        (replacement,) = engine_processes(os.getpid())
        assert replacement.pid != server.pid
        assert json.loads((probe_path / "after.json").read_text())["ppid"] == replacement.pid
    finally:
        await engines.close()


@pytest.mark.anyio
async def test_closing_the_fork_server_lets_it_end_once_idle(probe_path: Path) -> None:
    engines = ForkedEngines([])
    await engines.start()
    server = engines.server
    assert server is not None and server.returncode is None
    await engines.close()
    assert server.returncode == 0
    assert engine_processes(os.getpid()) == []


def test_the_heartbeat_join_a_run_skips_is_still_prefects() -> None:
    """`skip_heartbeat_join` wraps a private Prefect helper: fail loudly if Prefect changes it."""
    import inspect

    import prefect.flow_engine

    from infra.orchestration.warm_engine import skip_heartbeat_join

    original = prefect.flow_engine._send_heartbeats
    assert list(inspect.signature(original).parameters) == ["engine", "join_on_exit"]
    assert "with _send_heartbeats(self):" in inspect.getsource(prefect.flow_engine.FlowRunEngine)  # by module name
    calls = []
    prefect.flow_engine._send_heartbeats = lambda engine, join_on_exit=True: calls.append(join_on_exit) or original(
        engine, join_on_exit)
    try:
        skip_heartbeat_join()

        class NoHeartbeats:
            heartbeat_seconds = None  # the helper then starts no thread

        with prefect.flow_engine._send_heartbeats(NoHeartbeats(), join_on_exit=True):
            pass
        assert calls == [False]
    finally:
        prefect.flow_engine._send_heartbeats = original


def test_a_run_goes_on_while_the_suspension_observer_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The observer's start (a websocket to Prefect) no longer holds the run: its block is entered at once."""
    import contextlib
    import contextvars
    import inspect
    import threading

    import prefect.flow_engine

    from infra.orchestration.warm_engine import watch_suspension_in_background

    # The wrapped helper, as Prefect's engine calls it (by module name, with these arguments).
    assert list(inspect.signature(prefect.flow_engine.observe_flow_run_suspension).parameters) == [
        "flow_run_id", "suspension_request", "polling_interval"]
    assert "observe_flow_run_suspension(\n" in inspect.getsource(
        prefect.flow_engine.FlowRunEngine.setup_flow_run_suspension_request)

    marker = contextvars.ContextVar("marker", default="none")
    connected, observing, left = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple] = []

    @contextlib.contextmanager
    def slow_observer(flow_run_id: str, suspension_request: str, polling_interval: float = 10):
        connected.wait(5)  # Prefect's observer: no return before its websocket is up and the state read
        seen.append((flow_run_id, suspension_request, polling_interval, marker.get()))
        observing.set()
        try:
            yield
        finally:
            left.set()

    monkeypatch.setattr(prefect.flow_engine, "observe_flow_run_suspension", slow_observer)
    watch_suspension_in_background()
    marker.set("engine context")
    with prefect.flow_engine.observe_flow_run_suspension("run-1", "request"):
        assert not observing.is_set()  # the run is inside the block while the observer still connects
        connected.set()
        assert observing.wait(10)
    assert left.wait(10)  # leaving the block stops the observer
    assert seen == [("run-1", "request", 10, "engine context")]  # same arguments, the engine's context


def test_preload_imports_what_every_forked_run_would_import_after_the_fork() -> None:
    """Prefect's engine modules (and an inference line's lazy imports) are imported before the fork, so
    that runs share them: imported in the run, each is private to it (and copies the pages it touches)."""
    import subprocess

    script = """
import json, sys
from infra.orchestration.warm_engine import ENGINE_IMPORTS, preload
wanted = [*ENGINE_IMPORTS, "sqlite3", "infra.storage.local"]
before = [name for name in wanted if name in sys.modules]
preload(["flows.inference"])
print(json.dumps({"before": before, "missing": [name for name in wanted if name not in sys.modules]}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2], check=True)
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["before"] == []  # not already imported by the module itself: the test can fail
    assert report["missing"] == []


def test_prefect_clients_of_a_run_share_one_verifying_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Prefect client would parse the CA bundle into a context of its own (~0.75 MiB each)."""
    import ssl

    from prefect.client import orchestration
    from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, PREFECT_API_URL, temporary_settings

    from infra.orchestration.warm_engine import share_client_tls_contexts

    # Prefect's client builds the context this way (by module name): fail loudly if that changes.
    assert "ctx = ssl.create_default_context(cafile=cert_file)" in Path(orchestration.__file__).read_text()
    monkeypatch.setattr(orchestration, "ssl", ssl)  # put back after the test

    def context_of(client: object) -> ssl.SSLContext:
        return client._client._transport._pool._ssl_context  # type: ignore[attr-defined]  # httpx's own

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        before = [context_of(orchestration.get_client(sync_client=True)) for _ in range(2)]
        assert before[0] is not before[1]
        share_client_tls_contexts()
        clients = [orchestration.get_client(sync_client=True), orchestration.get_client(), orchestration.get_client()]
        shared = {id(context_of(client)) for client in clients}
        assert len(shared) == 1
        assert context_of(clients[0]).verify_mode == ssl.CERT_REQUIRED and context_of(clients[0]).check_hostname
        with temporary_settings({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
            insecure = [context_of(orchestration.get_client()) for _ in range(2)]
    assert insecure[0] is not insecure[1] and insecure[0].verify_mode == ssl.CERT_NONE  # changed per client: own
    assert id(insecure[0]) not in shared
    assert ssl.create_default_context() is not ssl.create_default_context()  # every other module: untouched
