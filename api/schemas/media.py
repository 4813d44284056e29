from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, computed_field

from api.schemas.common import ApiModel, UtcDatetime

MediaLabel = Literal["normal", "anomalous"]


class MediaOut(ApiModel):
    id: uuid.UUID
    project_id: uuid.UUID
    filename: str
    label: MediaLabel
    content_type: str
    width: int
    height: int
    size_bytes: int
    created_at: UtcDatetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def thumbnail_url(self) -> str:
        return f"/api/media/{self.id}/thumbnail"


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
