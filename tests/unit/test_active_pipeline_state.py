"""How an active pipeline row is settled from its flow run's state (the API's reconciliation rule)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from infra.active_pipelines import HEARTBEAT_STALE_S, heartbeat_age, settled_state
from infra.database.models import ActivePipeline
from infra.orchestration import Job, JobStatus, JobType

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def row(status: str = "running", heartbeat_s_ago: float | None = 1.0, message: str | None = None) -> ActivePipeline:
    beat = NOW - timedelta(seconds=heartbeat_s_ago) if heartbeat_s_ago is not None else None
    return ActivePipeline(id=uuid.uuid4(), pipeline_id=uuid.uuid4(), flow_run_id=uuid.uuid4(), status=status,
                          message=message, heartbeat_at=beat)


def job(status: JobStatus, message: str | None = None) -> Job:
    return Job(id=uuid.uuid4(), type=JobType.INFERENCE, status=status, project_id=None, progress=0.0,
               message=message)


@pytest.mark.parametrize(("status", "message", "expected"), [
    (JobStatus.FAILED, "Flow run infrastructure exited with non-zero status code -9",
     ("failed", "Flow run infrastructure exited with non-zero status code -9")),
    (JobStatus.FAILED, None, ("failed", "the flow run failed")),
    (JobStatus.CANCELLED, "Cancelled through the API", ("stopped", None)),
    (JobStatus.COMPLETED, None, ("stopped", None)),
])
def test_an_ended_run_settles_an_active_row(status: JobStatus, message: str | None, expected: tuple) -> None:
    for active_status in ("starting", "running", "stopping"):
        assert settled_state(row(active_status), job(status, message), NOW) == expected


def test_a_completed_run_keeps_the_reason_the_flow_wrote() -> None:
    assert settled_state(row(message="source ended"), job(JobStatus.COMPLETED), NOW) == ("stopped", "source ended")


def test_final_rows_never_change() -> None:
    for final in ("stopped", "failed"):
        assert settled_state(row(final), job(JobStatus.FAILED, "boom"), NOW) is None
        assert settled_state(row(final), None, NOW) is None


def test_a_run_unknown_to_prefect_fails_the_row() -> None:
    status, message = settled_state(row(), None, NOW)
    assert status == "failed" and "no longer exists" in message


def test_a_live_run_is_left_alone_even_with_an_old_heartbeat() -> None:
    # RUNNING in Prefect: the API shows a note, the crash automation decides if the worker is gone.
    assert settled_state(row(heartbeat_s_ago=HEARTBEAT_STALE_S * 10), job(JobStatus.RUNNING), NOW) is None
    assert settled_state(row("starting", heartbeat_s_ago=None), job(JobStatus.PENDING), NOW) is None
    assert settled_state(row("starting", heartbeat_s_ago=1), job(JobStatus.PENDING), NOW) is None


def test_a_silent_pipeline_whose_run_is_not_running_fails() -> None:
    status, message = settled_state(row(heartbeat_s_ago=HEARTBEAT_STALE_S + 5), job(JobStatus.PENDING), NOW)
    assert status == "failed"
    assert f"no heartbeat for {HEARTBEAT_STALE_S + 5:.0f} s" in message and "pending" in message


def test_heartbeat_age_reads_naive_sqlite_values_as_utc() -> None:
    naive = ActivePipeline(heartbeat_at=(NOW - timedelta(seconds=3)).replace(tzinfo=None))
    assert heartbeat_age(naive, NOW) == pytest.approx(3.0)
    assert heartbeat_age(ActivePipeline(), NOW) is None
