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
    # Either a model, or follow_champion: true (then the pipeline runs the project's champion and
    # switches live to each newly promoted one; model_id may be left out).
    model_id: uuid.UUID | None = None
    follow_champion: bool = False
    source_id: uuid.UUID
    sink_id: uuid.UUID
    config: PipelineConfig = Field(default_factory=PipelineConfig)


class PipelinePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    model_id: uuid.UUID | None = None
    follow_champion: bool | None = None
    source_id: uuid.UUID | None = None
    sink_id: uuid.UUID | None = None
    # Partial: only the keys given change; the merged result is validated as a PipelineConfig.
    config: dict[str, Any] | None = None


class PipelineOut(ApiModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    # The model it runs; for a pipeline that follows the champion, the current champion (null before one exists).
    model_id: uuid.UUID | None
    follow_champion: bool
    source_id: uuid.UUID
    sink_id: uuid.UUID
    config: PipelineConfig
    created_at: UtcDatetime
    updated_at: UtcDatetime
