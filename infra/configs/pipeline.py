"""Pipeline config: the knobs of one source → model → sink chain."""

from __future__ import annotations

from pydantic import Field

from infra.configs.base import ConfigModel


class PipelineConfig(ConfigModel):
    # Frames scoring at or above this are anomalous and sent to the sink.
    threshold: float = Field(default=0.5, ge=0, le=1)
    # Upper bound on frames processed per second; slower sources set the pace themselves.
    fps: float = Field(default=30.0, gt=0, le=120)
