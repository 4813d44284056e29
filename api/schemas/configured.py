"""Schema building blocks shared by the two configured resources, sources and sinks.

Both are {type, name, config} rows whose config is validated by a per-type model from
``infra.configs`` and whose secrets are masked on the way out.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, field_validator

from api.schemas.common import ApiModel, UtcDatetime
from infra.configs import ConfigModel, mask_config

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class ConfiguredCreateBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


def create_union(resource: str, configs: Mapping[str, type[ConfigModel]]) -> Any:
    """A request-body type discriminated on ``type``: one {type, name, config} variant per config model."""
    variants = tuple(
        create_model(
            f"{config.__name__.removesuffix('Config')}{resource}Create",
            __base__=ConfiguredCreateBase,
            type=(Literal[type_name], ...),
            config=(config, ...),
        )
        for type_name, config in configs.items()
    )
    return Annotated[Union[variants], Field(discriminator="type")]  # noqa: UP007 - a runtime-built union


class ConfiguredPatch(BaseModel):
    """Rename and/or replace the whole config; the type is fixed at creation."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    # The full config for the existing type; masked secrets sent back keep their stored values.
    config: dict[str, Any] | None = None


class ConfiguredOut(ApiModel):
    id: uuid.UUID
    project_id: uuid.UUID
    type: str
    name: str
    config: dict[str, Any]
    created_at: UtcDatetime
    updated_at: UtcDatetime

    # Masking lives in the response schema so that no response path can skip it.
    @field_validator("config")
    @classmethod
    def _mask(cls, config: dict[str, Any]) -> dict[str, Any]:
        return mask_config(config)
