"""The schedule page's read of Prefect: a short wait, then the last schedule known, and no second wait while
Prefect is slow or down."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from api.services import training_schedules
from infra.orchestration import OrchestrationUnavailable
from infra.orchestration.schedules import ProjectSchedule


def schedule_of(project_id: uuid.UUID) -> ProjectSchedule:
    return ProjectSchedule(project_id, "0 2 * * *", "UTC", True, {"project_id": str(project_id)})


def test_a_slow_prefect_costs_one_short_wait_then_its_answer_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    project_id, release = uuid.uuid4(), threading.Event()

    def slow(orchestrator: object, store: object, project: uuid.UUID) -> ProjectSchedule:
        release.wait(5)
        return schedule_of(project)

    monkeypatch.setattr(training_schedules, "get_schedule", slow)
    started = time.monotonic()
    first = training_schedules.quick_schedule(None, None, project_id, wait_s=0.05)  # type: ignore[arg-type]
    assert first.schedule is None and "slow" in (first.problem or "")
    again = training_schedules.quick_schedule(None, None, project_id, wait_s=0.05)  # type: ignore[arg-type]
    assert again.problem == first.problem and time.monotonic() - started < 0.5  # the read under way is not waited for
    release.set()
    training_schedules._pending[project_id].result(timeout=5)
    answered = training_schedules.quick_schedule(None, None, project_id)  # type: ignore[arg-type]
    assert answered.problem is None and answered.schedule == schedule_of(project_id)


def test_a_prefect_that_is_down_is_said_at_once_on_the_next_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    project_id = uuid.uuid4()
    training_schedules._remember(project_id, schedule_of(project_id))
    monkeypatch.setattr(training_schedules, "FRESH_S", 0.0)  # the known schedule is stale: ask Prefect

    def down(orchestrator: object, store: object, project: uuid.UUID) -> None:
        raise OrchestrationUnavailable("connection refused")

    monkeypatch.setattr(training_schedules, "get_schedule", down)
    first = training_schedules.quick_schedule(None, None, project_id)  # type: ignore[arg-type]
    assert "unreachable" in (first.problem or "") and first.schedule == schedule_of(project_id)
    monkeypatch.setattr(training_schedules, "FRESH_S", 60.0)
    started = time.monotonic()
    second = training_schedules.quick_schedule(None, None, project_id)  # type: ignore[arg-type]
    assert time.monotonic() - started < 0.05 and second == first
