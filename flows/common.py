"""What every flow shares: settings from the worker's environment, and the job's progress/metrics.

Progress is a Prefect progress artifact (the bar in the Prefect UI, read back by the Jobs API);
metrics such as stage, epoch and loss are a one-row table artifact updated in place.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.client.schemas.objects import StateType
from prefect.runtime import flow_run

from infra.settings import Settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def flow_settings() -> Settings:
    """Settings of the flow process: the worker passes every INSPECT_* variable through."""
    return Settings()


def scratch(settings: Settings, prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A job's scratch folder under this host's data dir (`work/`), removed when the job ends: what a flow
    downloads (a snapshot's images, model files) stays on its own host's data disk, not in a RAM-backed /tmp."""
    root = settings.resolved_data_dir / "work"
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=root)


def step(name: str, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `function` as a Prefect task called `name`: a row in the run's task list and timeline.

    Steps pass live objects (models, stores) and run once: no caching, no persisted results.
    """
    return task(name=name, cache_policy=NO_CACHE, persist_result=False)(function)(*args, **kwargs)


def current_job_id() -> uuid.UUID | None:
    run_id = flow_run.get_id()
    return uuid.UUID(str(run_id)) if run_id else None


def cancel_requested() -> bool:
    """Whether this run is being cancelled (through the API), rather than stopped some other way."""
    job_id = current_job_id()
    if job_id is None:
        return False
    try:
        with get_client(sync_client=True) as client:
            state_type = client.read_flow_run(job_id).state_type
    except Exception:  # noqa: BLE001 - unknown: treat as not cancelled
        log.exception("could not read the state of flow run %s", job_id)
        return False
    return state_type in (StateType.CANCELLING, StateType.CANCELLED)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


class JobProgress:
    """Monotonic progress in [0, 1] plus the latest metrics; writes are throttled.

    Outside a flow run (unit tests, scripts) it only keeps the values.
    """

    def __init__(self, description: str, min_interval_s: float = 1.0) -> None:
        self.value = 0.0
        self.metrics: dict[str, Any] = {}
        self._min_interval_s = min_interval_s
        self._last_write = 0.0
        self._written = -1.0
        self._enabled = current_job_id() is not None
        self._progress_id: uuid.UUID | None = None
        self._metrics_id: uuid.UUID | None = None
        self._dirty = False
        if self._enabled:
            self._progress_id = create_progress_artifact(progress=0.0, description=description)
            self._written = 0.0

    def update(self, fraction: float | None = None, **metrics: Any) -> None:
        """Raise the progress to `fraction` (never lowers it) and merge `metrics`."""
        if fraction is not None:
            self.value = max(self.value, min(max(float(fraction), 0.0), 1.0))
        cleaned = {key: _clean(value) for key, value in metrics.items()}
        changed = {key: value for key, value in cleaned.items()
                   if key not in self.metrics or self.metrics[key] != value}
        self.metrics.update(changed)
        self._dirty = self._dirty or bool(changed)
        if not self._enabled:
            return
        now = time.monotonic()
        stage_changed = "stage" in changed
        due = now - self._last_write >= self._min_interval_s or self.value >= 1.0 or stage_changed
        if not due:
            return
        self._last_write = now
        if self.value > self._written:
            update_progress_artifact(self._progress_id, progress=round(self.value * 100, 3))
            self._written = self.value
        if self._dirty:
            self._write_metrics()
            self._dirty = False

    def done(self, **metrics: Any) -> None:
        self.update(1.0, stage="done", **metrics)

    def _write_metrics(self) -> None:
        row = [dict(self.metrics)]
        if self._metrics_id is None:
            self._metrics_id = create_table_artifact(table=row, description="Job metrics (latest)")
            return
        with get_client(sync_client=True) as client:
            client.update_artifact(self._metrics_id, ArtifactUpdate(data=json.dumps(row)))
