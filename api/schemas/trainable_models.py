"""Schemas of the trainable-model catalog (``GET /trainable-models``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer


class ParameterSchema(BaseModel):
    """One constructor parameter of an architecture, in JSON terms."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["string", "integer", "number", "boolean", "array", "object"]
    default: Any = None
    options: list[Any] | None = None  # present when the choice is finite
    available_offline: list[str] | None = None  # backbone only: options whose weights load with no network
    nullable: bool | None = None
    minimum: int | None = None  # smallest accepted value, where the platform checks one
    description: str | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: Any) -> dict[str, Any]:
        # "default" may legitimately be null; the optional descriptors are left out when absent.
        data = handler(self)
        return {key: value for key, value in data.items() if key == "default" or value is not None}


class TrainableModel(BaseModel):
    name: str
    display_name: str
    description: str  # anomalib's first docstring line (names the paper)
    summary: str = Field(description="what the model does, in one plain line")
    speed: Literal["fast", "medium", "slow"] = Field(description="relative training time on a CPU")
    accuracy: Literal["high", "good", "fair"] = Field(description="relative image AUROC on real parts")
    recommended: bool = Field(description="advised for a first model on this platform")
    available: bool
    unavailable_reason: str | None = None
    parameters: dict[str, ParameterSchema]
