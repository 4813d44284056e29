from __future__ import annotations

import uuid
from typing import Any

from api.schemas.common import ApiModel, UtcDatetime


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
