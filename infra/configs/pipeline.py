"""Pipeline config: the knobs of one source → model → sink chain."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from infra.configs.base import ConfigModel

CollectionMode = Literal["off", "interval", "confident_normal", "uncertain"]
# A pipeline threshold that follows its model's own (``infra/evaluation.model_threshold``).
MODEL_THRESHOLD = "model"


class DataCollection(ConfigModel):
    """Which frames of the line become project media (see ``pipelines/collection.py``).

    ``interval``: one frame every ``interval_s``; ``confident_normal``: frames scoring below
    ``score_below``, at most one per ``interval_s``; ``uncertain``: frames scoring inside
    ``band`` (inclusive). Every mode collects at most ``max_per_hour`` frames in any hour.
    """

    mode: CollectionMode = "off"
    interval_s: float = Field(default=10.0, gt=0, le=86_400)
    score_below: float = Field(default=0.2, ge=0, le=1)
    band: list[float] = Field(default_factory=lambda: [0.4, 0.6], min_length=2, max_length=2)
    max_per_hour: int = Field(default=60, ge=1, le=36_000)

    @field_validator("band")
    @classmethod
    def _ordered_scores(cls, band: list[float]) -> list[float]:
        low, high = band
        if not 0 <= low <= high <= 1:
            raise ValueError("band must be [low, high] with 0 <= low <= high <= 1")
        return band


class PipelineConfig(ConfigModel):
    # Frames scoring at or above this are anomalous and sent to the sink. "model": the threshold the
    # pipeline's model ships with, followed when the model changes (a champion swap included).
    threshold: Annotated[float, Field(ge=0, le=1)] | Literal["model"] = 0.5
    # Upper bound on frames processed per second; slower sources set the pace themselves.
    fps: float = Field(default=30.0, gt=0, le=120)
    # Collecting frames of the line as new training/evaluation media; replaced as a whole by a PATCH.
    data_collection: DataCollection = Field(default_factory=DataCollection)

    def threshold_for(self, model_threshold: float) -> float:
        """The threshold in force with a model whose own threshold is ``model_threshold``."""
        return model_threshold if self.threshold == MODEL_THRESHOLD else float(self.threshold)
