from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import ApiModel, UtcDatetime
from infra.orchestration import JobStatus, JobType


class JobLinks(BaseModel):
    """Browser address of the job's flow run in the Prefect UI."""

    prefect_flow_run: str | None = None


class JobOut(ApiModel):
    id: uuid.UUID
    project_id: uuid.UUID | None
    type: JobType | None
    status: JobStatus
    progress: float
    metrics: dict[str, Any]
    message: str | None
    error: str | None
    created_at: UtcDatetime | None
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    links: JobLinks = Field(default_factory=JobLinks)


class JobAccepted(BaseModel):
    """Answer to a request that started a job (202)."""

    job_id: uuid.UUID
    status: JobStatus = JobStatus.PENDING
