from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import ConfigDict, Field

from api.schemas.common import UtcDatetime
from api.schemas.training import SearchSettings


class TrainingScheduleSettings(SearchSettings):
    """What a scheduled retraining run does (the parameters of the `retraining` deployment's schedule).

    ``architecture: "auto"`` trains the candidates (null: the default set as installed when the run
    starts) and keeps the best; ``decision_metric`` also decides between that candidate and the champion.
    """

    model_config = ConfigDict(extra="forbid")

    architecture: str = Field(default="padim", min_length=1, max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict)
    # auto: promote a candidate that beats the champion by min_improvement; manual: a person promotes.
    promotion: Literal["auto", "manual"] = "auto"
    min_improvement: float = Field(default=0.0, ge=0.0, le=1.0)
    # Skip the run when fewer media were added since the champion's snapshot.
    min_new_images: int = Field(default=0, ge=0)


class TrainingScheduleIn(TrainingScheduleSettings):
    cron: str = Field(min_length=1, max_length=120, examples=["0 2 * * *"])
    timezone: str = Field(default="UTC", min_length=1, max_length=64, examples=["Europe/Berlin"])
    active: bool = True


class TrainingScheduleOut(TrainingScheduleIn):
    model_config = ConfigDict(extra="ignore")

    project_id: uuid.UUID
    # The next 3 run times (UTC); empty while the schedule is paused.
    next_runs: list[UtcDatetime]
