from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from infra.orchestration import JobStatus

DecisionMetric = Literal["image_auroc", "pixel_auroc", "aupro"]


class CandidateIn(BaseModel):
    """One candidate of an automatic selection."""

    model_config = ConfigDict(extra="forbid")

    architecture: str = Field(min_length=1, max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict)


class SearchSettings(BaseModel):
    """Automatic selection (architecture "auto"): which candidates, how long, judged by what."""

    # Trained in this order, cheapest first (a cheaper candidate within noise of the best is kept);
    # null: every architecture available here (GET /trainable-models), cheapest first.
    candidates: list[CandidateIn] | None = Field(default=None, min_length=1, max_length=20)
    # Seconds after which no candidate starts and a running one stops (the first always completes).
    time_budget_s: float | None = Field(default=None, gt=0, le=7 * 86_400)
    # What the best candidate is judged by; pixel metrics need defect masks on the evaluation items
    # (without them image_auroc decides, and the model says so).
    decision_metric: DecisionMetric = "image_auroc"


class TrainRequest(SearchSettings):
    model_name: str | None = Field(default=None, min_length=1, max_length=255)
    # An architecture of GET /trainable-models, or "auto": train the candidates, keep the best.
    architecture: str = Field(min_length=1, max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict)
    # Without a snapshot the job first snapshots the project's current media.
    snapshot_id: uuid.UUID | None = None


class TrainAccepted(BaseModel):
    job_id: uuid.UUID
    status: JobStatus = JobStatus.PENDING
    model_id: uuid.UUID
    snapshot_id: uuid.UUID
