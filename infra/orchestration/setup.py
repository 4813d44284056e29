"""Idempotent Prefect configuration applied at start: work pools, deployments, crash automation.

Each call is safe to repeat against a server that already has the object. Project schedules
live in `schedules.py`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CRASH_AUTOMATION = "geti-inspect: crash flow runs that stopped heart-beating"
TERMINAL_EVENTS = {f"prefect.flow-run.{name}" for name in ("Completed", "Failed", "Cancelled", "Crashed")}


def ensure_work_pools(client: SyncPrefectClient, names: list[str]) -> None:
    """Create missing `process` work pools with Prefect's default job template."""
    from prefect.workers.process import ProcessWorker

    for name in names:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
            log.info("created work pool %r", name)


# Comma-separated modules a warm worker's spare engine imports (`pool_modules`); empty: no spare.
WARM_MODULES_ENV = "GETI_INSPECT_WARM_MODULES"
# How a warm worker gets a warm flow process: `fork` (a fork server), `spare` or `cold` (`engine_launchers`).
WORKER_START_ENV = "GETI_INSPECT_WORKER_START"


def _pool_deployments(pool: str, project_dir: Path) -> list[dict]:
    import yaml

    config = yaml.safe_load((project_dir / "prefect.yaml").read_text())
    return [deployment for deployment in config.get("deployments") or []
            if (deployment.get("work_pool") or {}).get("name") == pool]


def pool_modules(pool: str, project_dir: Path = REPO_ROOT) -> list[str]:
    """Modules of the flows that prefect.yaml deploys to `pool` (what a warm worker pre-imports)."""
    entrypoints = [deployment["entrypoint"] for deployment in _pool_deployments(pool, project_dir)]
    return list(dict.fromkeys(entrypoint.partition(":")[0] for entrypoint in entrypoints))


def pool_jobs(pool: str, project_dir: Path = REPO_ROOT) -> list[str]:
    """Names of the deployments (job types) whose runs a worker of `pool` takes."""
    return [deployment["name"] for deployment in _pool_deployments(pool, project_dir)]


def apply_deployments(api_url: str, project_dir: Path = REPO_ROOT, timeout: float = 180,
                      env: Mapping[str, str] | None = None) -> None:
    """`prefect deploy --all` from prefect.yaml (module entrypoints; upserts by name); `env`: e.g. credentials."""
    env = {**os.environ, **(env or {}), "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    result = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=project_dir,
                            env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        output = f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        raise RuntimeError(f"prefect deploy failed ({result.returncode}):\n{output}")


def ensure_crash_automation(client: SyncPrefectClient, within_seconds: float) -> uuid.UUID:
    """Runs whose heartbeats stop (worker or machine died) turn CRASHED instead of RUNNING forever.

    Flow processes heart-beat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (minimum 30);
    a run that emits neither a heartbeat nor a terminal event within `within_seconds` crashes.
    """
    automation = AutomationCore(
        name=CRASH_AUTOMATION,
        description="Geti Inspect: a job whose worker died ends failed instead of running forever.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *TERMINAL_EVENTS},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message=f"No heartbeat for {within_seconds:.0f} s: the worker or its machine died")],
    )
    existing = client.read_automations_by_name(CRASH_AUTOMATION)
    for found in existing:
        trigger = found.trigger
        if found.enabled and isinstance(trigger, EventTrigger) and trigger.within == automation.trigger.within:
            return found.id
    for found in existing:
        client.delete_automation(found.id)
    return client.create_automation(automation)


def crash_flow_runs(client: SyncPrefectClient, pools: list[str], pids: set[int], message: str) -> int:
    """Mark CRASHED at once the unfinished runs of `pools` whose flow process (`infrastructure_pid`) is one of
    `pids`, known dead, instead of after the heartbeat timeout.

    The pid carries no host: a run of another machine's worker with the same pid would match too, which
    the pool filter makes unlikely and the heartbeat automation would otherwise do anyway.
    """
    if not pids:
        return 0
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.states import Crashed

    unfinished = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
        any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING])))
    runs = client.read_flow_runs(flow_run_filter=unfinished, limit=200,
                                 work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=pools)))
    wanted = {str(pid) for pid in pids}
    crashed = 0
    for run in runs:
        if run.infrastructure_pid and run.infrastructure_pid.rpartition(":")[2] in wanted:
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            crashed += 1
    return crashed

