from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from api.schemas.common import ApiModel, UtcDatetime
from infra.datasets.defects import check_defect_type

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
    defect_type: str | None = None  # anomalous items: the kind of defect (imports keep MVTec's folder names)
    # Read from the row's mask hash: whether GET /media/{id}/mask has a defect mask to give.
    has_mask: bool = Field(default=False, validation_alias=AliasChoices("has_mask", "mask_sha256"))
    created_at: UtcDatetime

    @field_validator("has_mask", mode="before")
    @classmethod
    def _mask_present(cls, value: object) -> bool:
        return bool(value)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def thumbnail_url(self) -> str:
        return f"/api/media/{self.id}/thumbnail"


class MediaPatch(BaseModel):
    """A person's decision about one item: move it between train and eval, (re)label it, name its defect type.

    ``defect_type`` (anomalous items only) may be set to null to remove it.
    """

    model_config = ConfigDict(extra="forbid")

    split: MediaSplit | None = None
    label: MediaLabel | None = None
    defect_type: str | None = Field(default=None, max_length=64, description="null removes it")

    @field_validator("defect_type")
    @classmethod
    def _usable_defect_type(cls, value: str | None) -> str | None:
        return None if value is None else check_defect_type(value)

    @model_validator(mode="after")
    def _something_to_change(self) -> MediaPatch:
        if self.split is None and self.label is None and "defect_type" not in self.model_fields_set:
            raise ValueError("give a split, a label and/or a defect_type")
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
