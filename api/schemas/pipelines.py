from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import ApiModel, UtcDatetime
from api.schemas.configured import Name
from infra.configs import PipelineConfig


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    model_id: uuid.UUID
    source_id: uuid.UUID
    sink_id: uuid.UUID
    config: PipelineConfig = Field(default_factory=PipelineConfig)


class PipelinePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    model_id: uuid.UUID | None = None
    source_id: uuid.UUID | None = None
    sink_id: uuid.UUID | None = None
    # Partial: only the keys given change; the merged result is validated as a PipelineConfig.
    config: dict[str, Any] | None = None


class PipelineOut(ApiModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    model_id: uuid.UUID
    source_id: uuid.UUID
    sink_id: uuid.UUID
    config: PipelineConfig
    created_at: UtcDatetime
    updated_at: UtcDatetime
