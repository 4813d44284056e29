"""The training worker's job limit and what a queued job says."""

from __future__ import annotations

import uuid
from pathlib import Path

from prefect.client.schemas.objects import FlowRun
from prefect.states import Running, Scheduled

from infra.orchestration.client import _job_from_run
from infra.settings import Settings
from infra.supervisor.orphans import STACK_ENV
from infra.supervisor.stack import StackOptions, worker_spec


def _spec(pool: str, **settings):
    return worker_spec(Settings(data_dir=Path("/tmp/x"), **settings), pool, None, prefect_api="http://p/api",
                       mlflow_uri="http://m", options=StackOptions())


def test_only_the_training_worker_is_limited():
    assert _spec("training").argv[-2:] == ["--limit", "1"]
    assert _spec("training", training_concurrency=3).argv[-2:] == ["--limit", "3"]
    assert "--limit" not in _spec("inference").argv
    assert _spec("training").env[STACK_ENV].startswith("/tmp/x|")
    assert _spec("training").env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "4"


def _run(state) -> FlowRun:
    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), tags=["job:training"], work_pool_name="training",
                   state=state, state_type=state.type)


def test_a_queued_job_says_it_waits_for_a_worker():
    job = _job_from_run(_run(Scheduled()), None, None)
    assert job.status.value == "pending" and "waiting for a worker of the 'training' work pool" in job.message
    running = _job_from_run(_run(Running()), None, None)
    assert running.status.value == "running" and running.message is None
