from __future__ import annotations

import uuid

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import ApiModel, UtcDatetime


def _clean_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("name must not be blank")
    return value


class ProjectCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)

    _name = field_validator("name")(_clean_name)


class ProjectUpdate(BaseModel):
    name: str = Field(min_length=1, max_length=255)

    _name = field_validator("name")(_clean_name)


class ProjectOut(ApiModel):
    id: uuid.UUID
    name: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
