from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field, model_validator

from api.schemas.common import ApiModel, UtcDatetime

# "unlabelled" only comes from data collection (a frame waiting for a person to judge it).
MediaLabel = Literal["normal", "anomalous", "unlabelled"]
UploadLabel = Literal["normal", "anomalous"]
MediaSplit = Literal["train", "eval"]
MediaOrigin = Literal["uploaded", "collected"]


class MediaOut(ApiModel):
    id: uuid.UUID
    project_id: uuid.UUID
    filename: str
    label: MediaLabel
    content_type: str
    width: int
    height: int
    size_bytes: int
    split: MediaSplit
    origin: MediaOrigin
    pipeline_id: uuid.UUID | None = None  # the pipeline that collected it
    score: float | None = None  # its anomaly score when collected
    created_at: UtcDatetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def thumbnail_url(self) -> str:
        return f"/api/media/{self.id}/thumbnail"


class MediaPatch(BaseModel):
    """A person's decision about one item: move it between train and eval, or (re)label it."""

    model_config = ConfigDict(extra="forbid")

    split: MediaSplit | None = None
    label: MediaLabel | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> MediaPatch:
        if self.split is None and self.label is None:
            raise ValueError("give a split and/or a label")
        return self


class MediaPage(BaseModel):
    items: list[MediaOut]
    total: int
    limit: int
    offset: int


class UploadError(BaseModel):
    filename: str
    detail: str


class UploadResult(BaseModel):
    uploaded: int
    failed: int
    items: list[MediaOut]
    errors: list[UploadError]
