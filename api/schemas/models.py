from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import ApiModel, UtcDatetime


class ModelLinks(BaseModel):
    """Browser addresses of the model's MLflow run (once trained) and of the flow run that trained it."""

    mlflow_run: str | None = None
    prefect_flow_run: str | None = None


class ModelOut(ApiModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    format: str
    architecture: str
    status: str
    metrics: dict[str, Any]
    parameters: dict[str, Any]
    created_at: UtcDatetime
    updated_at: UtcDatetime
    job_id: uuid.UUID | None
    snapshot_id: uuid.UUID | None
    mlflow_run_id: str | None
    mlflow_model_name: str | None
    mlflow_model_version: str | None
    error: str | None
    # The model the project's live lines follow (at most one per project).
    champion: bool = False
    links: ModelLinks = Field(default_factory=ModelLinks)
