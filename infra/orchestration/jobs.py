"""Jobs as the API sees them: a view of one Prefect flow run (its id is the job id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from prefect.client.schemas.objects import StateType


class JobType(StrEnum):
    SNAPSHOT = "snapshot"
    TRAINING = "training"
    EXPORT = "export"
    INFERENCE = "inference"  # a live pipeline: runs until it is stopped
    RETRAINING = "retraining"  # snapshot, train a candidate, compare with the champion, maybe promote
    IMPORT = "import"  # a dataset (zip or server folder) into a project


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Deployment ("<flow name>/<deployment name>", as in prefect.yaml) that runs each job type.
DEPLOYMENTS: dict[JobType, str] = {
    JobType.SNAPSHOT: "create-snapshot/snapshot",
    JobType.TRAINING: "train-model/training",
    JobType.EXPORT: "export-model/export",
    JobType.INFERENCE: "run-pipeline/inference",
    JobType.RETRAINING: "retrain-project/retraining",
    JobType.IMPORT: "import-dataset/import",
}

STATUS_BY_STATE: dict[StateType, JobStatus] = {
    StateType.SCHEDULED: JobStatus.PENDING,
    StateType.PENDING: JobStatus.PENDING,
    StateType.PAUSED: JobStatus.PENDING,
    StateType.RUNNING: JobStatus.RUNNING,
    StateType.CANCELLING: JobStatus.RUNNING,
    StateType.COMPLETED: JobStatus.COMPLETED,
    StateType.FAILED: JobStatus.FAILED,
    StateType.CRASHED: JobStatus.FAILED,
    StateType.CANCELLED: JobStatus.CANCELLED,
}

FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
FINAL_STATES = [state for state, status in STATUS_BY_STATE.items() if status in FINISHED]

# A finished job is *settled* (its record never changes again) once it has been read this long after it
# ended. Flows write their progress and metrics artifacts before their final state, but a client that
# creates a run already finished (scripts, tests, benchmarks) adds its artifacts just after.
SETTLED_AFTER_S = 10.0


def waiting_message(work_pool: str | None) -> str:
    """Why a job is pending: no worker of its pool has a free slot (or none is online) yet."""
    pool = f"the {work_pool!r} work pool" if work_pool else "its work pool"
    return f"Queued: waiting for a worker of {pool} to take it (its workers are busy, or none is online)"


def state_types_for(status: JobStatus) -> list[StateType]:
    return [state for state, mapped in STATUS_BY_STATE.items() if mapped is status]


def status_of(state_type: StateType | None) -> JobStatus:
    # A run without a state yet is about to be scheduled.
    return STATUS_BY_STATE.get(state_type, JobStatus.PENDING) if state_type else JobStatus.PENDING


def is_settled(status: JobStatus, ended_at: datetime | None, read_at: datetime) -> bool:
    """Finished, and read (at `read_at`) at least SETTLED_AFTER_S after it ended."""
    if status not in FINISHED or ended_at is None:
        return False
    ended_at = ended_at if ended_at.tzinfo else ended_at.replace(tzinfo=UTC)
    return (read_at - ended_at).total_seconds() >= SETTLED_AFTER_S


def project_tag(project_id: uuid.UUID | str) -> str:
    return f"project:{project_id}"


def type_tag(job_type: JobType) -> str:
    return f"job:{job_type.value}"


def tag_value(tags: list[str], prefix: str) -> str | None:
    for tag in tags:
        if tag.startswith(f"{prefix}:"):
            return tag.split(":", 1)[1]
    return None


@dataclass
class Job:
    id: uuid.UUID
    type: JobType | None
    status: JobStatus
    project_id: uuid.UUID | None
    progress: float
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    settled: bool = False  # finished and read well after it ended: this record is final (is_settled)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def error(self) -> str | None:
        """The reason a job did not complete (Prefect's state message)."""
        if self.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            return self.message or self.status.value
        return None
