from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel


class PredictionOut(BaseModel):
    """A model's verdict on one media item."""

    media_id: uuid.UUID
    model_id: uuid.UUID
    model_name: str
    score: float  # 0..1, normalised so that `threshold` is the model's own decision boundary
    label: Literal["normal", "anomalous"]
    threshold: float
    heatmap_url: str | None  # the PNG of the anomaly map; null when the model exports none
