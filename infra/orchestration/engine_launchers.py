"""How the warm worker gets a flow process that has already done its imports.

Two launchers with one interface (`EngineLauncher`), chosen by `INSPECT_WORKER_START`:

- `ForkedEngines` (`fork`, the default): one fork server (`infra.orchestration.fork_server`) imports
  the pool's flows once when the worker starts, then forks a child per run in milliseconds, at any
  time, with the imports shared copy-on-write. Nothing is rebuilt after a run, so back-to-back jobs
  never pay an import, and nothing imports while a job runs.
- `SpareEngine` (`spare`): one spare process waits with the imports done and runs one flow run; its
  replacement is started once that run has ended (so that its imports never compete with a job for
  the CPU), which makes a job submitted right after another one pay a cold start.

The benchmark `benchmarks/job_start.py` measures both against cold `python -m prefect.engine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import uuid
from typing import Any, Protocol

import anyio
import anyio.abc
import psutil

log = logging.getLogger(__name__)

ENGINE_MODULE = "infra.orchestration.warm_engine"
# The fork server imports torch, anomalib, Prefect and MLflow: 10-20 s on 2 busy cores, more on a slow disk.
READY_TIMEOUT_S = 300.0
# An exit the fork server could not report (it died first) reads as this code: the run's fate is unknown.
UNKNOWN_EXIT = 1


class RunProcess(Protocol):
    """What Prefect's `ProcessHandle` and our starter use of a flow process."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


class EngineLauncher(Protocol):
    async def start(self) -> None:
        """Called once as the worker starts, before it takes runs."""

    async def launch(self, order: dict[str, Any]) -> RunProcess:
        """A process running `order` (`env`, `cwd`): Prefect's engine for one flow run."""

    async def run_ended(self) -> None:
        """Called after each run's process has exited."""

    async def close(self) -> None: ...


def engine_processes(worker_pid: int) -> list[psutil.Process]:
    """The worker's warm engine processes (fork server or spare), not counting ones that have exited."""
    found = []
    try:
        children = psutil.Process(worker_pid).children()
    except psutil.Error:
        return []
    for child in children:
        try:
            if ENGINE_MODULE in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


class SpareEngine:
    """At most one waiting spare `warm_engine` process, replaced after the run it took has ended."""

    def __init__(self, modules: list[str]) -> None:
        self.modules = modules
        self._spare: anyio.abc.Process | None = None

    async def _spawn(self) -> anyio.abc.Process:
        # stdout/stderr are the worker's: the run's output lands where a cold run's would.
        return await anyio.open_process([sys.executable, "-m", ENGINE_MODULE, *self.modules],
                                        stdin=subprocess.PIPE, stdout=None, stderr=None)

    async def take(self) -> anyio.abc.Process:
        """The waiting spare (or a new one, importing while the run's order waits in its stdin)."""
        spare, self._spare = self._spare, None
        if spare is None or spare.returncode is not None:
            spare = await self._spawn()
        return spare

    async def start(self) -> None:
        await self.run_ended()

    async def launch(self, order: dict[str, Any]) -> RunProcess:
        process = await self.take()
        assert process.stdin is not None
        await process.stdin.send(json.dumps(order).encode() + b"\n")
        await process.stdin.aclose()
        return process

    async def run_ended(self) -> None:
        if self._spare is None or self._spare.returncode is not None:
            self._spare = await self._spawn()

    async def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is None:
            return
        if spare.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                spare.terminate()
        await spare.aclose()


class ForkedRun:
    """A flow process forked by the fork server: the worker's grandchild, whose exit the server reports."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = asyncio.Event()

    def ended(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    async def wait(self) -> int:
        await self._ended.wait()
        assert self.returncode is not None
        return self.returncode


class ForkedEngines:
    """The worker's side of the fork server: starts it, hands it orders, learns the children's exits."""

    def __init__(self, modules: list[str], *, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        self.modules = modules
        self.ready_timeout_s = ready_timeout_s
        self.server: anyio.abc.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[int] | None = None
        self._forking: dict[str, asyncio.Future[ForkedRun]] = {}
        self._runs: dict[int, ForkedRun] = {}
        self._orphans: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the server and wait for its imports, so that the worker takes no run before it is warm."""
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.server = await anyio.open_process(
                [sys.executable, "-m", ENGINE_MODULE, "--fork-server", str(theirs.fileno()), *self.modules],
                stdin=subprocess.DEVNULL, stdout=None, stderr=None, pass_fds=(theirs.fileno(),))
            reader, self._writer = await asyncio.open_connection(sock=ours.dup())
        self._ready = asyncio.get_running_loop().create_future()
        self._replies = asyncio.create_task(self._read_replies(reader, self._ready))
        try:
            with anyio.fail_after(self.ready_timeout_s):
                await asyncio.shield(self._ready)
        except (TimeoutError, ConnectionError) as error:
            log.warning("the fork server is not ready (%s); runs will start it again", error)
            await self.close()

    async def _read_replies(self, reader: asyncio.StreamReader, ready: asyncio.Future[int]) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if "ready" in message:
                    ready.set_result(message["ready"])
                elif "id" in message:
                    run = self._runs[message["pid"]] = ForkedRun(message["pid"])
                    if (forking := self._forking.pop(message["id"], None)) is not None:
                        forking.set_result(run)
                elif (run := self._runs.pop(message["pid"], None)) is not None:
                    run.ended(message["exit"])
        finally:
            self._fail_pending(ready)
        # The server exited: its running children were re-parented and can only be watched by pid.
        runs, self._runs = self._runs, {}
        for run in runs.values():
            watcher = asyncio.create_task(_wait_orphan(run))
            self._orphans.add(watcher)  # a reference, so that the task is not collected while it waits
            watcher.add_done_callback(self._orphans.discard)

    def _fail_pending(self, ready: asyncio.Future[int]) -> None:
        if not ready.done():
            ready.set_exception(ConnectionError("the fork server exited before it was ready"))
        for forking in self._forking.values():
            if not forking.done():
                forking.set_exception(ConnectionError("the fork server exited"))
        self._forking.clear()

    async def launch(self, order: dict[str, Any]) -> RunProcess:
        if self._replies is None or self._replies.done():
            await self.close()
            await self.start()  # the server died: this run pays for the imports
        assert self._writer is not None
        order_id = uuid.uuid4().hex
        forked = self._forking[order_id] = asyncio.get_running_loop().create_future()
        self._writer.write(json.dumps({"id": order_id, **order}).encode() + b"\n")
        await self._writer.drain()
        return await forked

    async def run_ended(self) -> None:
        pass  # the server never runs a job itself: nothing to replace

    async def close(self) -> None:
        """Stop taking orders; children already forked run on to their end."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        server, self.server = self.server, None
        if server is not None and self._ready is not None and not self._ready.done():
            with contextlib.suppress(ProcessLookupError):
                server.terminate()  # still importing: nothing of value to wait for
        if self._replies is not None:  # the server ends only after its children: do not wait for that
            self._replies.cancel()
            with contextlib.suppress(BaseException):
                await self._replies
            self._replies = None
        if server is not None and not self._runs:  # idle or dead: it ends at once, reap it
            with anyio.move_on_after(10):
                await server.wait()


async def _wait_orphan(run: ForkedRun, interval_s: float = 1.0) -> None:
    """A child whose server died: it runs on, re-parented; its exit code can no longer be read."""
    while True:
        try:
            if psutil.Process(run.pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        await asyncio.sleep(interval_s)
    log.warning("flow process %s outlived its fork server; its exit status is unknown", run.pid)
    run.ended(UNKNOWN_EXIT)
