"""Processes left behind by a supervisor that died without stopping them (SIGKILL, OOM killer).

Children run in their own sessions (see `process.py`), so they outlive a killed `serve`: the old
Prefect and MLflow servers would keep the ports, the old workers would keep taking jobs beside the
new ones. Every supervised child therefore carries `GETI_INSPECT_STACK=<data dir>|<supervisor pid>|
<supervisor start time>` in its environment, and flow processes inherit it from their worker. A new
supervisor on the same data dir ends those whose supervisor is gone; the flow runs that died with
them are the unfinished ones whose `infrastructure_pid` (the flow process, as the worker records
it) is among their pids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

STACK_ENV = "GETI_INSPECT_STACK"


def stack_marker(data_dir: Path) -> str:
    """The value this process gives its children."""
    me = psutil.Process()
    return f"{data_dir}|{me.pid}|{me.create_time():.3f}"


def _supervisor_alive(pid: int, started: str) -> bool:
    try:
        return f"{psutil.Process(pid).create_time():.3f}" == started
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@dataclass
class Leftovers:
    orphans: list[psutil.Process] = field(default_factory=list)

    @property
    def pids(self) -> set[int]:
        return {process.pid for process in self.orphans}

    def running(self, module: str) -> list[psutil.Process]:
        """The orphans started as `python -m <module>`."""
        found = []
        for process in self.orphans:
            try:
                argv = process.cmdline()
            except psutil.Error:
                continue
            if any(flag == "-m" and name == module for flag, name in zip(argv, argv[1:], strict=False)):
                found.append(process)
        return found


def find_leftovers(data_dir: Path) -> Leftovers:
    """Processes marked with this data dir whose supervisor is gone (a live one's children are left alone)."""
    found = Leftovers()
    me = psutil.Process().pid
    for process in psutil.process_iter():
        try:
            environ = process.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        directory, _, owner = environ.get(STACK_ENV, "").partition("|")
        if directory != str(data_dir) or process.pid == me:
            continue
        pid, _, started = owner.partition("|")
        if not pid.isdigit() or int(pid) == me:
            continue
        if _supervisor_alive(int(pid), started):
            continue
        found.orphans.append(process)
    return found


def end_processes(processes: list[psutil.Process], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still there after `grace_s`."""
    for process in processes:
        try:
            log.warning("ending %s (pid %d), left by a supervisor that died", " ".join(process.cmdline()[:4]),
                        process.pid)
            process.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=grace_s)
