"""The warm worker asks Prefect for runs when a run of its pool is scheduled or a slot frees, not only on its poll."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from prefect.events import Event
from prefect.workers.base import BaseWorker

from infra.orchestration import warm_worker
from infra.orchestration.warm_worker import WarmProcessWorker


def _event(name: str, pool: str | None) -> Event:
    related = [] if pool is None else [{"prefect.resource.id": f"prefect.work-pool.{uuid.uuid4()}",
                                         "prefect.resource.role": "work-pool", "prefect.resource.name": pool}]
    return Event(occurred=datetime.now(UTC), event=name, id=uuid.uuid4(), related=related,
                 resource={"prefect.resource.id": f"prefect.flow-run.{uuid.uuid4()}"})


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Times of the polls that reached Prefect's own `get_and_submit_flow_runs` (each takes 50 ms)."""
    made: list[float] = []

    async def poll(self) -> list:
        made.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.05)
        return []

    monkeypatch.setattr(BaseWorker, "get_and_submit_flow_runs", poll)
    monkeypatch.setattr(warm_worker, "REPOLL_AFTER_S", 0.2)
    return made


def _run(scenario) -> None:
    async def main() -> None:
        worker = WarmProcessWorker(work_pool_name="training")
        await scenario(worker)
        for task in list(worker._background):  # noqa: SLF001
            task.cancel()

    asyncio.run(main())


def test_a_run_scheduled_in_its_pool_is_asked_for_now_and_once_more_soon_after(polls) -> None:
    async def scenario(worker: WarmProcessWorker) -> None:
        worker._on_run_event(_event("prefect.flow-run.Scheduled", "training"))  # noqa: SLF001
        await asyncio.sleep(0.5)

    _run(scenario)
    assert len(polls) == 2 and polls[1] - polls[0] >= 0.2


def test_other_pools_and_other_states_wake_nothing(polls) -> None:
    async def scenario(worker: WarmProcessWorker) -> None:
        worker._on_run_event(_event("prefect.flow-run.Scheduled", "inference"))  # noqa: SLF001
        worker._on_run_event(_event("prefect.flow-run.Running", "training"))  # noqa: SLF001
        await asyncio.sleep(0.4)

    _run(scenario)
    assert polls == []


def test_asks_made_while_a_poll_waits_are_one_poll(polls) -> None:
    async def scenario(worker: WarmProcessWorker) -> None:
        for _ in range(5):
            worker.poll_soon()
        await asyncio.sleep(0.3)

    _run(scenario)
    assert len(polls) == 2, polls  # the first, and one that waited for it


def test_a_freed_slot_asks_for_the_run_that_waits_for_it(polls) -> None:
    async def scenario(worker: WarmProcessWorker) -> None:
        worker._release_limit_slot(uuid.uuid4())  # noqa: SLF001
        await asyncio.sleep(0.2)

    _run(scenario)
    assert len(polls) == 1
