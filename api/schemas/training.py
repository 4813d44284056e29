from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from infra.orchestration import JobStatus


class TrainRequest(BaseModel):
    model_name: str | None = Field(default=None, min_length=1, max_length=255)
    architecture: str = Field(min_length=1, max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict)
    # Without a snapshot the job first snapshots the project's current media.
    snapshot_id: uuid.UUID | None = None


class TrainAccepted(BaseModel):
    job_id: uuid.UUID
    status: JobStatus = JobStatus.PENDING
    model_id: uuid.UUID
    snapshot_id: uuid.UUID
