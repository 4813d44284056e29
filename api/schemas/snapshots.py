from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from api.schemas.common import ApiModel, UtcDatetime


class SnapshotOut(ApiModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    status: str
    media_count: int | None
    job_id: uuid.UUID | None
    error: str | None
    created_at: UtcDatetime


class SnapshotCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
