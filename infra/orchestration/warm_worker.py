"""Prefect's process worker, with flow runs started in a spare process that has done its imports.

A job's own work can be a few seconds, while a fresh `python -m prefect.engine` spends 10-20 s of
a 2-core machine importing Prefect, torch and anomalib before the flow starts. This worker keeps
one spare process (`infra.orchestration.warm_engine`) that has already imported the modules of
the pool's flows, and hands the next flow run to it. Everything else is Prefect's own machinery:
the run executor, state proposals, cancellation (control channel + SIGTERM to the run's pid) and
crash detection see an ordinary child process of the worker.

The replacement spare is started only once the run that used the last one has ended, so that its
imports never compete with a running job for the CPU; a run that finds no spare gets one started
on the spot, which costs what a cold `python -m prefect.engine` costs.

    python -m infra.orchestration.warm_worker worker start --pool training   # the `prefect` CLI
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import psutil
from prefect.flows import load_flow_from_flow_run
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from infra.orchestration.setup import WARM_MODULES_ENV

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel

def waiting_spares(worker_pid: int) -> list[psutil.Process]:
    """The worker's spare engine processes: the waiting one and any that now runs a flow it was handed."""
    spares = []
    try:
        children = psutil.Process(worker_pid).children()
    except psutil.Error:
        return []
    for child in children:
        try:
            if "infra.orchestration.warm_engine" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                spares.append(child)
        except psutil.Error:
            continue
    return spares


class SpareEngine:
    """At most one waiting `warm_engine` process."""

    def __init__(self, modules: list[str]) -> None:
        self.modules = modules
        self._spare: anyio.abc.Process | None = None

    async def _spawn(self) -> anyio.abc.Process:
        # stdout/stderr are the worker's: the run's output lands where a cold run's would.
        return await anyio.open_process([sys.executable, "-m", "infra.orchestration.warm_engine", *self.modules],
                                        stdin=subprocess.PIPE, stdout=None, stderr=None)

    async def take(self) -> anyio.abc.Process:
        """The waiting spare (or a new one, importing while the run's order waits in its stdin)."""
        spare, self._spare = self._spare, None
        if spare is None or spare.returncode is not None:
            spare = await self._spawn()
        return spare

    async def refill(self) -> None:
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


class WarmEngineStarter:
    """A Prefect `ProcessStarter`: hands the flow run to the spare instead of spawning the engine."""

    def __init__(self, spares: SpareEngine, *, cwd: Path, env: dict[str, str | None],
                 control_channel: ControlChannel | None) -> None:
        self._spares = spares
        self._cwd = cwd
        self._env = env
        self._control_channel = control_channel

    def _run_environment(self, flow_run: FlowRun, control: dict[str, str]) -> dict[str, str]:
        """What `python -m prefect.engine` would get from Prefect's own starter."""
        env: dict[str, str | None] = {**os.environ, **self._env,
                                      **get_current_settings().to_environment_variables(exclude_unset=True)}
        env.update({"PREFECT__FLOW_RUN_ID": str(flow_run.id), "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
                    "PREFECT__DEPLOYMENT_NAME": self._env.get("PREFECT__DEPLOYMENT_NAME"), **control})
        return {key: value for key, value in sanitize_subprocess_env(env).items() if value is not None}

    async def start(self, flow_run: FlowRun,
                    task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED) -> None:
        control: dict[str, str] = {}
        if self._control_channel is not None:
            try:
                port, token = self._control_channel.register(flow_run.id)
                control = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
            except RuntimeError:
                pass  # no loopback listener: Prefect falls back to kill-only cancellation
        try:
            process = await self._spares.take()
            order = json.dumps({"env": self._run_environment(flow_run, control), "cwd": str(self._cwd)})
            assert process.stdin is not None
            await process.stdin.send(order.encode() + b"\n")
            await process.stdin.aclose()
        except BaseException:
            if control and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise
        task_status.started(ProcessHandle(process))
        await process.wait()
        await self._spares.refill()  # not when cancelled: the worker is stopping


# Subclassing re-registers the "process" worker type to this class, which is the point.
warnings.filterwarnings("ignore", message="Type 'WarmProcessWorker'.*will be overridden")


class WarmProcessWorker(ProcessWorker):
    """`type = "process"`: serves ordinary process work pools and replaces Prefect's class for them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        modules = [name for name in os.environ.get(WARM_MODULES_ENV, "").split(",") if name]
        self._spares = SpareEngine(modules) if modules else None

    async def setup(self) -> None:
        await super().setup()
        if self._spares is not None:
            await self._spares.refill()

    async def teardown(self, *exc_info: Any) -> None:
        if self._spares is not None:
            await self._spares.close()
        await super().teardown(*exc_info)

    async def run(self, flow_run: FlowRun, configuration: ProcessJobConfiguration,
                  task_status: anyio.abc.TaskStatus[int] | None = None) -> ProcessWorkerResult:
        # A custom `command` job variable asks for a specific launcher: leave it to Prefect.
        if self._spares is None or configuration._command_configured:  # noqa: SLF001
            return await super().run(flow_run, configuration, task_status)
        task_status = task_status or anyio.TASK_STATUS_IGNORED
        execution: FlowRunExecutionResult | None = None
        with tempfile.TemporaryDirectory(suffix="prefect") as scratch:
            async with FlowRunExecutorContext() as context:
                starter = WarmEngineStarter(self._spares, cwd=Path(configuration.working_dir or scratch).resolve(),
                                            env=configuration.env, control_channel=context.control_channel)
                executor = context.create_executor(flow_run, starter, resolve_flow=load_flow_from_flow_run,
                                                   propose_submitting=False)

                async def execute(*, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
                                  ) -> None:
                    nonlocal execution
                    execution = await executor.submit(task_status=task_status)

                async with anyio.create_task_group() as group:
                    handle = await group.start(execute)
                    task_status.started(handle.pid)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(status_code=execution.status_code, identifier=str(execution.handle.pid))


def main() -> None:
    """The `prefect` CLI, with this worker class registered for process pools."""
    from prefect.cli import app

    app()


if __name__ == "__main__":
    main()
