"""Leftovers of a killed supervisor: found by their environment marker and ended; others left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from infra.supervisor.orphans import STACK_ENV, end_processes, find_leftovers


def _sleeper(marker: str) -> subprocess.Popen:
    env = {STACK_ENV: marker}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)


def _marker(data_dir: Path, process: psutil.Process | subprocess.Popen) -> str:
    info = psutil.Process(process.pid)
    return f"{data_dir}|{info.pid}|{info.create_time():.3f}"


def test_children_of_a_dead_supervisor_are_found_and_ended(tmp_path: Path):
    data_dir = tmp_path / "data"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_marker = _marker(data_dir, dead)
    dead.wait()
    alive_supervisor = _sleeper("unrelated")
    orphan_flow = _sleeper(dead_marker)
    orphan_server = _sleeper(dead_marker)
    owned = _sleeper(_marker(data_dir, alive_supervisor))  # its supervisor lives: not ours to end
    elsewhere = _sleeper(f"{tmp_path / 'other'}|{dead_marker.split('|', 1)[1]}")  # another data dir
    try:
        found = find_leftovers(data_dir)
        assert found.pids == {orphan_flow.pid, orphan_server.pid}
        end_processes(found.orphans, grace_s=5)
        assert orphan_flow.wait(5) is not None and orphan_server.wait(5) is not None
        assert owned.poll() is None and elsewhere.poll() is None
        assert find_leftovers(data_dir).orphans == []
    finally:
        for process in (alive_supervisor, orphan_flow, orphan_server, owned, elsewhere):
            process.kill()
            process.wait()


def test_leftovers_running_a_module_are_told_apart(tmp_path: Path):
    """A restart ends the old Prefect server (`python -m <its module>`) before the flows it recorded."""
    data_dir = tmp_path / "data"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_marker = _marker(data_dir, dead)
    dead.wait()
    flow = _sleeper(dead_marker)
    server = subprocess.Popen([sys.executable, "-m", "timeit", "-n", "1", "-r", "1", "import time; time.sleep(60)"],
                              env={STACK_ENV: dead_marker})
    try:
        found = find_leftovers(data_dir)
        assert found.pids == {flow.pid, server.pid}
        assert [process.pid for process in found.running("timeit")] == [server.pid]
        assert found.running("time") == [] and found.running("infra.orchestration.prefect_server") == []
    finally:
        for process in (flow, server):
            process.kill()
            process.wait()
