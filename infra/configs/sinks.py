"""Sink configs: where anomaly events go (see pipelines/sinks for the writers)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from infra.configs.base import ConfigModel, check_url, clean_text

# RFC 9110 token: what an HTTP header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class _EventSinkConfig(ConfigModel):
    # Seconds after an event during which further events to this sink are dropped (0: send every one).
    cooldown_s: float = Field(default=1.0, ge=0, le=86400)


class WebhookConfig(_EventSinkConfig):
    outbound_url_fields: ClassVar[tuple[str, ...]] = ("url",)

    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=1.0, ge=0, le=300)
    include_image: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, {"http", "https"})

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in seen:
                raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
            seen.add(name.lower())
            if "\r" in value or "\n" in value or "\x00" in value:
                raise ValueError(f"header {name!r} contains a line break or NUL")
        return headers


class MqttConfig(_EventSinkConfig):
    outbound_url_fields: ClassVar[tuple[str, ...]] = ("broker",)

    broker: str
    topic: str
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=1024)
    qos: int = Field(default=1, ge=0, le=2)
    include_image: bool = False
    client_id: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        return check_url(value, {"mqtt", "mqtts"}, allow_credentials=False)

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        clean_text(value, "topic", max_length=1024)
        if "+" in value or "#" in value:
            raise ValueError("a publish topic must not contain the wildcards '+' or '#'")
        if value.startswith("$"):
            raise ValueError("topics starting with '$' are reserved for the broker")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value, "client_id", max_length=128)

    @model_validator(mode="after")
    def _password_needs_username(self) -> MqttConfig:
        if self.password is not None and self.username is None:
            raise ValueError("MQTT sends a password only together with a username")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.broker).scheme.lower() == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.broker).hostname or ""

    @property
    def port(self) -> int:
        """The broker port, defaulting to 1883 (mqtt) or 8883 (mqtts)."""
        return urlsplit(self.broker).port or (8883 if self.tls else 1883)


class FilesystemConfig(_EventSinkConfig):
    server_path_fields: ClassVar[tuple[str, ...]] = ("output_dir",)

    output_dir: str
    save_images: bool = True

    @field_validator("output_dir")
    @classmethod
    def _output_dir(cls, value: str) -> str:
        return clean_text(value, "output_dir")


SINK_CONFIGS: dict[str, type[ConfigModel]] = {
    "webhook": WebhookConfig,
    "mqtt": MqttConfig,
    "filesystem": FilesystemConfig,
}

SinkConfig = WebhookConfig | MqttConfig | FilesystemConfig


def parse_sink_config(sink_type: str, data: dict[str, Any]) -> SinkConfig:
    """Validate a stored or submitted config for its sink type (ValueError for an unknown type)."""
    if sink_type not in SINK_CONFIGS:
        raise ValueError(f"unknown sink type {sink_type!r}")
    return SINK_CONFIGS[sink_type].model_validate(data)  # type: ignore[return-value]
