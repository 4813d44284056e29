"""Prefect's process worker, with flow runs started in a process that has already done its imports.

A job's own work can be a few seconds, while a fresh `python -m prefect.engine` spends 10-20 s of
a 2-core machine importing Prefect, torch and anomalib before the flow starts. This worker gets
each run's process from an `EngineLauncher` (`engine_launchers.py`: a fork server by default, or a
spare process) that has imported the modules of the pool's flows. Everything else is Prefect's own
machinery: the run executor, state proposals, cancellation (control channel + SIGTERM to the
run's pid) and crash detection see an ordinary flow process.

It also asks for runs when Prefect's event stream (run_events.py) announces a scheduled run, and
when a run ends (a slot of `--limit` frees), besides Prefect's own poll every
`PREFECT_WORKER_QUERY_SECONDS`: a job starts within a fraction of a second of its submission while
an idle worker asks Prefect only every 10 s (`serve`'s default). While the stream is down it polls
every `FAST_POLL_S`.

    python -m infra.orchestration.warm_worker worker start --pool training   # the `prefect` CLI
"""

from __future__ import annotations

import asyncio
import contextlib
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
from infra.orchestration.run_events import follow_run_events
from infra.orchestration.setup import WARM_MODULES_ENV, WORKER_START_ENV

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.events import Event
    from prefect.runner._control_channel import ControlChannel

log = logging.getLogger(__name__)

SCHEDULED_EVENT = "prefect.flow-run.Scheduled"  # a new run, or a retry: one to take
FAST_POLL_S = 1.0  # while the event stream is down
# The server emits a state event inside the transaction that makes the change: the poll it triggers can
# come before the commit, so a second one follows this much later.
REPOLL_AFTER_S = 1.0


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
        self._poll_lock = asyncio.Lock()
        self._polls_asked = 0  # polls asked for and not begun (at most one waits)
        self._background: set[asyncio.Task[None]] = set()
        self._events_connected = False

    async def setup(self) -> None:
        # Before Prefect's setup, whose first heartbeat shows the worker online: a job submitted as
        # soon as it is online must not wait for the imports.
        if self._launcher is not None:
            await self._launcher.start()
        await super().setup()
        self._in_background(follow_run_events(self._on_run_event, self._on_stream,
                                              name=f"worker {self._work_pool_name}"))
        self._in_background(self._poll_while_stream_down())

    async def teardown(self, *exc_info: Any) -> None:
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._launcher is not None:
            await self._launcher.close()
        await super().teardown(*exc_info)

    # -- polls beside Prefect's own loop ---------------------------------------------------------

    def _in_background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def get_and_submit_flow_runs(self) -> list[FlowRun]:
        async with self._poll_lock:  # Prefect's loop and the extra polls never overlap
            return await super().get_and_submit_flow_runs()

    def poll_soon(self, delay_s: float = 0.0) -> None:
        """Ask Prefect for runs now (or after `delay_s`); polls asked while one waits are one."""
        async def poll() -> None:
            if delay_s:
                await asyncio.sleep(delay_s)
            self._polls_asked += 1
            if self._polls_asked > 1:
                self._polls_asked -= 1
                return
            try:
                async with self._poll_lock:
                    self._polls_asked -= 1
                    await super(WarmProcessWorker, self).get_and_submit_flow_runs()
            except Exception:  # noqa: BLE001 - Prefect's own loop polls again anyway
                log.warning("poll for flow runs failed", exc_info=True)

        self._in_background(poll())

    def _on_run_event(self, event: Event) -> None:
        if event.event != SCHEDULED_EVENT:
            return
        pools = [resource.name for resource in event.related if resource.role == "work-pool"]
        if pools and self._work_pool_name not in pools:
            return
        self.poll_soon()
        self.poll_soon(REPOLL_AFTER_S)

    def _on_stream(self, connected: bool) -> None:
        self._events_connected = connected

    async def _poll_while_stream_down(self) -> None:
        while True:
            await asyncio.sleep(FAST_POLL_S)
            if not self._events_connected:
                self.poll_soon()

    def _release_limit_slot(self, flow_run_id: UUID) -> None:
        super()._release_limit_slot(flow_run_id)
        with contextlib.suppress(RuntimeError):  # no running loop: the worker is stopping
            self.poll_soon()  # a run waiting for this slot starts now, not at the next poll

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
        result = await self._run_process(flow_run, configuration, task_status)
        await self._settle_cancelling(flow_run.id)
        return result

    async def _settle_cancelling(self, flow_run_id: UUID) -> None:
        """A run whose process has ended is no longer cancelling: it is cancelled.

        A cancel that lands after the run's process started but before its flow engine took the run (seconds on
        a loaded machine) is seen by nobody: Prefect's watchers of this run had stopped, or not yet subscribed,
        and the engine, finding the run Cancelling, exits without a final state. The job showed running for good.
        """
        try:
            run = await self.client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_cancelling():
                await self._mark_flow_run_as_cancelled(
                    run, state_updates={"message": "Cancelled: its process ended while the run was being cancelled."})
        except Exception:  # noqa: BLE001 - the run's own outcome is already decided; this only tidies its state
            log.warning("could not settle cancelling flow run %s", flow_run_id, exc_info=True)

    async def _run_process(self, flow_run: FlowRun, configuration: ProcessJobConfiguration,
                           task_status: anyio.abc.TaskStatus[int] | None) -> ProcessWorkerResult:
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
