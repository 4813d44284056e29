"""Source configs: where a pipeline's frames come from (see pipelines/sources for the readers)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from infra.configs.base import ConfigModel, check_url, clean_text


class WebcamConfig(ConfigModel):
    device_index: int = Field(ge=0, le=255)
    width: int | None = Field(default=None, gt=0, le=16384)
    height: int | None = Field(default=None, gt=0, le=16384)
    fps: float | None = Field(default=None, gt=0, le=240)


class IpCameraConfig(ConfigModel):
    outbound_url_fields: ClassVar[tuple[str, ...]] = ("url",)

    url: str
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=1024)
    reconnect: bool = True
    reconnect_delay_s: float = Field(default=2.0, gt=0, le=300)
    # None: keep retrying for as long as the pipeline runs.
    max_reconnect_attempts: int | None = Field(default=None, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, {"rtsp", "rtsps", "http", "https"})


class VideoFileConfig(ConfigModel):
    # A path on the machine that runs the pipeline, inside INSPECT_ALLOWED_PATHS; the API does not open it.
    server_path_fields: ClassVar[tuple[str, ...]] = ("path",)

    path: str
    loop: bool = True

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return clean_text(value, "path")


class ImagesFolderConfig(ConfigModel):
    server_path_fields: ClassVar[tuple[str, ...]] = ("path",)

    path: str
    pattern: str = "*"
    recursive: bool = False
    loop: bool = True
    # Keep polling the folder for new files instead of stopping (or looping) at the end.
    watch: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return clean_text(value, "path")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        clean_text(value, "pattern", max_length=255)
        if "/" in value or "\\" in value or ".." in value:
            raise ValueError("pattern matches file names; it must not contain path separators or '..'")
        return value


SOURCE_CONFIGS: dict[str, type[ConfigModel]] = {
    "webcam": WebcamConfig,
    "ip_camera": IpCameraConfig,
    "video_file": VideoFileConfig,
    "images_folder": ImagesFolderConfig,
}

SourceConfig = WebcamConfig | IpCameraConfig | VideoFileConfig | ImagesFolderConfig


def parse_source_config(source_type: str, data: dict[str, Any]) -> SourceConfig:
    """Validate a stored or submitted config for its source type (ValueError for an unknown type)."""
    if source_type not in SOURCE_CONFIGS:
        raise ValueError(f"unknown source type {source_type!r}")
    return SOURCE_CONFIGS[source_type].model_validate(data)  # type: ignore[return-value]
