"""The process supervisor: restarts with backoff, gives up loudly, stops stubborn children and strays."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from infra.settings import Settings
from infra.supervisor import ChildSpec, ManagedProcess, RestartPolicy, stop_processes
from infra.supervisor.environment import allocator_env, settings_env, threading_env, worker_env
from infra.supervisor.process import remember_descendants

# Ignores the first SIGTERM (like `prefect worker`), starts a grandchild in its own session.
STUBBORN = """
import signal, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
hits = []
def on_term(signum, frame):
    hits.append(signum)
    if len(hits) > 1:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def _spec(code: str, tmp_path: Path, **kwargs) -> ChildSpec:
    return ChildSpec("child", [sys.executable, "-c", code], dict(os.environ), log_path=tmp_path / "child.log", **kwargs)


def _drive(process: ManagedProcess, until, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, process.status()
        process.check()
        time.sleep(0.02)


def test_dead_child_is_restarted_with_backoff_then_given_up(tmp_path):
    policy = RestartPolicy(max_restarts=2, window_s=60, backoff_initial_s=0.1, backoff_max_s=0.2)
    assert [policy.delay(n) for n in range(3)] == [0.1, 0.2, 0.2]
    process = ManagedProcess(_spec("print('boom'); raise SystemExit(3)", tmp_path), policy)
    process.start()
    started = time.monotonic()
    _drive(process, lambda: process.status()[1].startswith("exited with code 3; gave up"))
    assert process.restart_count == 2 and time.monotonic() - started >= 0.3
    ok, detail = process.status()
    assert not ok and "gave up after 2 restarts" in detail
    assert (tmp_path / "child.log").read_text().count("boom") == 3
    assert "boom" in process.log_tail()


def test_healthy_child_reports_running_and_is_not_restarted(tmp_path):
    process = ManagedProcess(_spec("import time; time.sleep(30)", tmp_path))
    process.start()
    try:
        process.check()
        assert process.status() == (True, f"running (pid {process.pid})")
        assert process.restart_count == 0
    finally:
        stop_processes([process])
    assert process.status() == (False, "stopped")
    process.check()
    assert not process.alive, "a stopped child must stay stopped"


def test_stop_escalates_and_kills_strays(tmp_path):
    process = ManagedProcess(_spec(STUBBORN, tmp_path, term_grace_s=0.5))
    process.start()
    _drive(process, lambda: "ready" in (tmp_path / "child.log").read_text() and process.descendants())
    stray = process.descendants()[0]
    started = time.monotonic()
    stop_processes([process], second_signal_grace_s=5)
    assert not process.alive and process._popen.returncode == 0, "the second SIGTERM must end it"
    assert 0.4 < time.monotonic() - started < 5
    assert not stray.is_running() or stray.status() == psutil.STATUS_ZOMBIE


# Starts a grandchild in its own session (as a worker's flow run outlives it), then waits.
PARENT_OF_A_FLOW = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print("ready", flush=True)
time.sleep(60)
"""


def test_descendants_remembered_in_one_pass_outlive_their_crashed_parent(tmp_path):
    """The supervisor's watch remembers every child's descendants from one read of the process table; a crashed
    child's flow is still known (and so stopped), and no child is given another's."""
    a = ManagedProcess(ChildSpec("a", [sys.executable, "-c", PARENT_OF_A_FLOW], dict(os.environ),
                                 log_path=tmp_path / "a.log"), RestartPolicy(max_restarts=0))
    b = ManagedProcess(ChildSpec("b", [sys.executable, "-c", PARENT_OF_A_FLOW], dict(os.environ),
                                 log_path=tmp_path / "b.log"))
    for process, log in ((a, "a.log"), (b, "b.log")):
        process.start()
        _drive(process, lambda log=log: "ready" in (tmp_path / log).read_text())
    try:
        flow_of_a = psutil.Process(a.pid).children()[0]
        flow_of_b = psutil.Process(b.pid).children()[0]
        remember_descendants([a, b])
        psutil.Process(a.pid).kill()  # the crash: its flow, in a session of its own, lives on
        _drive(a, lambda: not a.alive)
        assert [child.pid for child in a.known_descendants()] == [flow_of_a.pid]
        assert [child.pid for child in b.known_descendants()] == [flow_of_b.pid]
    finally:
        stop_processes([a, b])
    assert not flow_of_a.is_running() or flow_of_a.status() == psutil.STATUS_ZOMBIE


def test_settings_travel_through_the_environment(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "d", prefect_port=4321, storage_backend="s3", s3_bucket="b")
    env = settings_env(settings)
    for key in [key for key in os.environ if key.startswith("INSPECT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings()
    assert rebuilt.resolved_data_dir == settings.resolved_data_dir
    assert rebuilt.resolved_database_url == settings.resolved_database_url
    assert (rebuilt.prefect_port, rebuilt.storage_backend, rebuilt.s3_bucket) == (4321, "s3", "b")


@pytest.mark.parametrize("present", [True, False])
def test_allocator_preloaded_only_when_installed(tmp_path, monkeypatch, present):
    library = tmp_path / "libtcmalloc_minimal.so.4"
    if present:
        library.write_bytes(b"")
    monkeypatch.setenv("LD_PRELOAD", "/other/lib.so")
    env = allocator_env(library)
    if present:
        assert env == {"LD_PRELOAD": f"{library}:/other/lib.so", "TBB_ENABLE_SANITIZERS": "1"}
    else:
        assert env == {}


def test_workers_make_openmp_threads_wait_passively_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    env = worker_env(Settings(), "http://127.0.0.1:1/api", "http://127.0.0.1:2")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert threading_env() == {"OMP_WAIT_POLICY": "ACTIVE"}
