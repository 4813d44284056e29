"""`prefect server start` with a calmer background-task loop: the `prefect` CLI, two defaults changed.

Prefect's server runs its services (scheduler, foreman, triggers' housekeeping, ...) and the writes a
worker's poll queues as tasks of an in-process docket worker on an in-memory Redis (burner_redis):

- the worker looks for due tasks every 250 ms; here every second (`CalmDocketWorker`). The quickest
  service repeats every 5 s and nothing a job waits on goes through that queue;
- its task-cancellation listener reads a pub/sub channel with a 0.1 s timeout in a loop, and the
  in-memory pub/sub waits for a message in a thread, in 0.1 s slices: ten thread hand-offs a second,
  forever, for a cancellation Prefect never sends (its server cancels no docket task). Here the
  slices are 1 s (`wait_in_longer_slices`), so the listener also notices a stopping server within 1 s.

Measured on this 2-core machine, a server alone with no client, 60 s each, with the services that
`supervisor/environment.prefect_server_env` turns off: 1.23 and 1.13 % of a core with the 1 s task
loop, 0.80 and 0.78 % with the longer slices too (Prefect's defaults: 1.57 %, 40 s).

    python -m infra.orchestration.prefect_server server start --host 127.0.0.1 --port 4200
"""

from __future__ import annotations

import asyncio
import queue
from datetime import timedelta
from typing import Any

import docket

CHECK_INTERVAL = timedelta(seconds=1)
PUBSUB_SLICE_S = 1.0


class CalmDocketWorker(docket.Worker):
    """A docket worker that looks for due tasks every second instead of every quarter second."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("minimum_check_interval", CHECK_INTERVAL)
        kwargs.setdefault("scheduling_resolution", CHECK_INTERVAL)
        super().__init__(*args, **kwargs)


async def _queue_get(self: Any, timeout: float | None) -> Any:
    """burner_redis `PubSub._queue_get` waiting in `PUBSUB_SLICE_S` slices (at least `timeout`), not 0.1 s ones."""
    if timeout == 0.0:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None
    while True:
        try:
            return await asyncio.to_thread(self._queue.get, True, max(timeout or 0.0, PUBSUB_SLICE_S))
        except queue.Empty:
            if timeout is not None:
                return None


def wait_in_longer_slices() -> bool:
    """Patch burner_redis's pub/sub wait; False (nothing changed, Prefect's own behaviour) where its private
    method is not the one this was written against: a newer burner_redis must not stop the server starting."""
    try:
        from burner_redis.pubsub import PubSub
    except ImportError:
        return False
    if not callable(getattr(PubSub, "_queue_get", None)):
        return False
    PubSub._queue_get = _queue_get  # type: ignore[method-assign]  # noqa: SLF001
    return True


def main() -> None:
    import prefect.server.api.background_workers as background_workers
    from prefect.cli import app

    background_workers.Worker = CalmDocketWorker  # the name the server's lifespan builds its worker from
    if not wait_in_longer_slices():
        print("note: burner_redis has no PubSub._queue_get; its pub/sub waits in Prefect's 0.1 s slices", flush=True)
    app()


if __name__ == "__main__":
    main()
