"""A supervised child process: its own process group, bounded restarts with backoff, escalating stop.

Children run in their own session so that a terminal's Ctrl-C reaches only the supervisor, which
then stops them in order; stopping signals the whole group (servers spawn helpers) and then any
descendant that left the group (flow-run processes started by a worker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None = None
    log_path: Path | None = None
    # Seconds between the first SIGTERM and the second one (`prefect worker` needs two signals).
    term_grace_s: float = 10.0


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 300.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0

    def delay(self, recent_restarts: int) -> float:
        return min(self.backoff_initial_s * 2 ** recent_restarts, self.backoff_max_s)


@dataclass
class ManagedProcess:
    spec: ChildSpec
    policy: RestartPolicy = field(default_factory=RestartPolicy)

    def __post_init__(self) -> None:
        self._popen: subprocess.Popen[bytes] | None = None
        self._restarts: deque[float] = deque()
        self._restart_at: float | None = None
        self._last_exit: int | None = None
        self._gave_up = False
        self._stopping = False
        self._lock = threading.RLock()
        # Descendants seen so far: a flow process outlives a crashed worker and must still be stopped.
        self._seen: dict[int, psutil.Process] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def restart_count(self) -> int:
        return len(self._restarts)

    def start(self) -> None:
        with self._lock:
            self._stopping = False
            self._spawn()

    def _spawn(self) -> None:
        out: int | object = subprocess.DEVNULL
        if self.spec.log_path is not None:
            self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.spec.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._popen = subprocess.Popen(self.spec.argv, env=self.spec.env, cwd=self.spec.cwd,
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        log.info("started %s (pid %d)", self.name, self._popen.pid)

    def check(self, now: float | None = None) -> None:
        """Called periodically: restart a dead child after a backoff, or give up loudly."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._stopping or self._gave_up or self._popen is None or self._popen.poll() is None:
                return
            if self._restart_at is None:
                self._last_exit = self._popen.returncode
                while self._restarts and now - self._restarts[0] > self.policy.window_s:
                    self._restarts.popleft()
                if len(self._restarts) >= self.policy.max_restarts:
                    self._gave_up = True
                    log.error("%s exited with code %s; gave up after %d restarts in %.0f s\n%s", self.name,
                              self._last_exit, len(self._restarts), self.policy.window_s, self.log_tail())
                    return
                delay = self.policy.delay(len(self._restarts))
                self._restart_at = now + delay
                log.warning("%s exited with code %s; restarting in %.0f s\n%s", self.name, self._last_exit, delay,
                            self.log_tail())
            elif now >= self._restart_at:
                self._restarts.append(now)
                self._restart_at = None
                self._spawn()

    def status(self) -> tuple[bool, str]:
        with self._lock:
            if self.alive:
                restarted = f", restarted {len(self._restarts)}x" if self._restarts else ""
                return True, f"running (pid {self.pid}{restarted})"
            if self._gave_up:
                return False, f"exited with code {self._last_exit}; gave up after {len(self._restarts)} restarts"
            if self._stopping:
                return False, "stopped"
            return False, f"exited with code {self._popen.returncode if self._popen else None}; restarting"

    def log_tail(self, lines: int = 20) -> str:
        if self.spec.log_path is None or not self.spec.log_path.exists():
            return ""
        with open(self.spec.log_path, "rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - 8192, 0))
            return b"\n".join(handle.read().splitlines()[-lines:]).decode(errors="replace")

    def signal_group(self, signum: int) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)

    def descendants(self) -> list[psutil.Process]:
        """Current descendants, remembered for `known_descendants`."""
        if not self.alive:
            return []
        try:
            children = psutil.Process(self._popen.pid).children(recursive=True)  # type: ignore[union-attr]
        except psutil.Error:
            return []
        self.remember(children)
        return children

    def remember(self, descendants: Iterable[psutil.Process]) -> None:
        self._seen.update((child.pid, child) for child in descendants)

    def known_descendants(self) -> list[psutil.Process]:
        """Every descendant ever seen that still runs (psutil checks it is the same process, not a reused pid)."""
        self.descendants()
        self._seen = {pid: child for pid, child in self._seen.items() if child.is_running()}
        return list(self._seen.values())

    def mark_stopping(self) -> None:
        with self._lock:
            self._stopping = True


def stop_processes(processes: Iterable[ManagedProcess], second_signal_grace_s: float = 3.0) -> None:
    """SIGTERM each group, again after the longest grace, SIGKILL after that; then any stray descendant.

    Stop processes with similar graces together (workers first, then servers).
    """
    processes = list(processes)
    for process in processes:
        process.mark_stopping()
    strays = [child for process in processes for child in process.known_descendants()]
    processes = [process for process in processes if process.alive]
    for process in processes:
        process.signal_group(signal.SIGTERM)
    _wait_dead(processes, max((process.spec.term_grace_s for process in processes), default=0))
    for process in [process for process in processes if process.alive]:
        log.info("%s still running: signalling again", process.name)
        process.signal_group(signal.SIGTERM)
    _wait_dead(processes, second_signal_grace_s)
    for process in [process for process in processes if process.alive]:
        log.warning("%s did not stop: killing it", process.name)
        process.signal_group(signal.SIGKILL)
    _wait_dead(processes, 5.0)
    _kill_strays(strays)


def _wait_dead(processes: list[ManagedProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(process.alive for process in processes):
        time.sleep(0.1)


def _kill_strays(strays: list[psutil.Process], grace_s: float = 10.0) -> None:
    """SIGTERM lets a flow process clean up what it wrote (servers are still up); SIGKILL after `grace_s`."""
    alive = [child for child in strays if child.is_running()]
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, still = psutil.wait_procs(alive, timeout=grace_s)
    for child in still:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(still, timeout=3)


def remember_descendants(processes: Iterable[ManagedProcess]) -> None:
    """What `ManagedProcess.descendants` remembers, for every process of this supervisor at once: psutil reads the
    whole process table for each `children(recursive=True)`, here it is read once (with hundreds of processes on a
    machine, a few milliseconds per read)."""
    owners = {process.pid: process for process in processes if process.alive}
    try:
        ours = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    parents: dict[int, int] = {}
    for child in ours:
        with contextlib.suppress(psutil.Error):
            parents[child.pid] = child.ppid()
    found: dict[int, list[psutil.Process]] = {pid: [] for pid in owners}
    for child in ours:
        pid = parents.get(child.pid)
        while pid is not None and pid not in owners:
            pid = parents.get(pid)  # up the tree, until a supervised process or the supervisor itself
        if pid is not None and child.pid not in owners:
            found[pid].append(child)
    for pid, descendants in found.items():
        owners[pid].remember(descendants)
