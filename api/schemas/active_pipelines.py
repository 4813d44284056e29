from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.common import ApiModel, UtcDatetime

ActiveStatus = Literal["starting", "running", "stopping", "stopped", "failed"]


class ActivePipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: uuid.UUID


class ActivePipelineStarted(ApiModel):
    id: uuid.UUID
    pipeline_id: uuid.UUID
    status: ActiveStatus
    # The flow run of the `inference` deployment (also a job: GET /jobs/{job_id}).
    job_id: uuid.UUID | None = Field(default=None, validation_alias="flow_run_id")


class PipelineMetrics(BaseModel):
    """Written by the running pipeline every second; zeros until its first report."""

    frames_processed: int = 0
    anomalies_detected: int = 0
    avg_inference_time_ms: float = 0.0
    fps: float = 0.0
    sink_errors: int = 0
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    frames_dropped: int = 0
    collected: int = 0  # frames stored as project media by data collection
    collection_errors: int = 0  # collected frames that could not be stored (the line kept running)
    # Anomaly scores of the last frames (up to 120, oldest first), for a live chart.
    recent_scores: list[float] = Field(default_factory=list)


class ActivePipelineOut(ApiModel):
    id: uuid.UUID
    pipeline_id: uuid.UUID
    status: ActiveStatus
    job_id: uuid.UUID | None = Field(default=None, validation_alias="flow_run_id")
    # The model it runs now (changes live when its pipeline's model changes or a followed champion is promoted).
    model_id: uuid.UUID | None = None
    # Why it failed; while it runs, what is wrong without stopping it (e.g. a camera reconnecting).
    message: str | None
    metrics: PipelineMetrics
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    stopped_at: UtcDatetime | None
    heartbeat_at: UtcDatetime | None

    @field_validator("metrics", mode="before")
    @classmethod
    def _known_metrics(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: value[key] for key in PipelineMetrics.model_fields if value.get(key) is not None}
        return value


class CaptureOut(BaseModel):
    id: uuid.UUID
    timestamp: UtcDatetime
    anomaly_score: float
    image_url: str
    # The runtime's verdict at the pipeline's threshold when the frame was captured.
    label: Literal["normal", "anomalous"]
    # The project media made from the frame (add_to_dataset=true), else null.
    media_id: uuid.UUID | None = None
