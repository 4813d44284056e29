"""Prefect's process worker, with flow runs started in a process that has already done its imports.

A job's own work can be a few seconds, while a fresh `python -m prefect.engine` spends 10-20 s of
a 2-core machine importing Prefect, torch and anomalib before the flow starts. This worker gets
each run's process from an `EngineLauncher` (`engine_launchers.py`: a fork server by default, or a
spare process) that has imported the modules of the pool's flows. Everything else is Prefect's own
machinery: the run executor, state proposals, cancellation (control channel + SIGTERM to the
run's pid) and crash detection see an ordinary flow process.

    python -m infra.orchestration.warm_worker worker start --pool training   # the `prefect` CLI
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import anyio.abc
from prefect.flows import load_flow_from_flow_run
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from infra.orchestration.engine_launchers import EngineLauncher, ForkedEngines, SpareEngine
from infra.orchestration.setup import WARM_MODULES_ENV, WORKER_START_ENV

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel

log = logging.getLogger(__name__)


class WarmEngineStarter:
    """A Prefect `ProcessStarter`: hands the flow run to a warm engine instead of spawning one."""

    def __init__(self, launcher: EngineLauncher, *, cwd: Path, env: dict[str, str | None],
                 control_channel: ControlChannel | None) -> None:
        self._launcher = launcher
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
            process = await self._launcher.launch({"env": self._run_environment(flow_run, control),
                                                   "cwd": str(self._cwd)})
        except BaseException:
            if control and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise
        task_status.started(ProcessHandle(process))  # type: ignore[arg-type]  # pid and returncode are all it reads
        await process.wait()
        await self._launcher.run_ended()  # not when cancelled: the worker is stopping


# Subclassing re-registers the "process" worker type to this class, which is the point.
warnings.filterwarnings("ignore", message="Type 'WarmProcessWorker'.*will be overridden")


class WarmProcessWorker(ProcessWorker):
    """`type = "process"`: serves ordinary process work pools and replaces Prefect's class for them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._launcher = engine_launcher(os.environ.get(WORKER_START_ENV, "fork"),
                                         [name for name in os.environ.get(WARM_MODULES_ENV, "").split(",") if name])

    async def setup(self) -> None:
        # Before Prefect's setup, whose first heartbeat shows the worker online: a job submitted as
        # soon as it is online must not wait for the imports.
        if self._launcher is not None:
            await self._launcher.start()
        await super().setup()

    async def teardown(self, *exc_info: Any) -> None:
        if self._launcher is not None:
            await self._launcher.close()
        await super().teardown(*exc_info)

    async def _give_worker_labels_to_flow_run(self, flow_run_id: UUID) -> None:
        """Label the run with this worker (the Prefect UI shows them) without holding up its start.

        Prefect's server makes this update read the run, then write it; with its SQLite database
        busy (another run finishing) the write fails with SQLITE_BUSY_SNAPSHOT, the server answers
        503 and the client retries 2 s later. The run does not need its labels to start, so they
        are set beside it; a failure is logged instead of failing the run.
        """
        label = super()._give_worker_labels_to_flow_run

        async def label_in_background() -> None:
            try:
                await label(flow_run_id)
            except Exception:  # noqa: BLE001 - labels are for the UI: never a reason to stop a run
                log.warning("could not label flow run %s with its worker", flow_run_id, exc_info=True)

        if self._runs_task_group is None:  # not started as a worker: as Prefect does it
            await label_in_background()
        else:
            self._runs_task_group.start_soon(label_in_background)

    async def run(self, flow_run: FlowRun, configuration: ProcessJobConfiguration,
                  task_status: anyio.abc.TaskStatus[int] | None = None) -> ProcessWorkerResult:
        # A custom `command` job variable asks for a specific launcher: leave it to Prefect.
        if self._launcher is None or configuration._command_configured:  # noqa: SLF001
            return await super().run(flow_run, configuration, task_status)
        task_status = task_status or anyio.TASK_STATUS_IGNORED
        execution: FlowRunExecutionResult | None = None
        with tempfile.TemporaryDirectory(suffix="prefect") as scratch:
            async with FlowRunExecutorContext() as context:
                starter = WarmEngineStarter(self._launcher, cwd=Path(configuration.working_dir or scratch).resolve(),
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


def engine_launcher(mode: str, modules: list[str]) -> EngineLauncher | None:
    """The launcher for `INSPECT_WORKER_START` (`fork`, `spare`; `cold` or no modules: Prefect's own starter)."""
    if not modules or mode == "cold":
        return None
    return SpareEngine(modules) if mode == "spare" else ForkedEngines(modules)


def main() -> None:
    """The `prefect` CLI, with this worker class registered for process pools."""
    from prefect.cli import app

    app()


if __name__ == "__main__":
    main()
