"""Frame sources by type; configs are parsed with the shared models in ``infra.configs.sources``."""

from __future__ import annotations

from typing import Any

from infra.configs.base import ConfigModel
from infra.configs.confinement import Confinement
from infra.configs.sources import parse_source_config
from pipelines.sources.base import Source, SourceCheck, SourceEnded, SourceError, SourceFrame
from pipelines.sources.images_folder import ImagesFolderSource
from pipelines.sources.ip_camera import IpCameraSource
from pipelines.sources.video_file import VideoFileSource
from pipelines.sources.webcam import WebcamSource

SOURCE_TYPES: dict[str, type[Source]] = {
    "webcam": WebcamSource,
    "ip_camera": IpCameraSource,
    "video_file": VideoFileSource,
    "images_folder": ImagesFolderSource,
}


def build_source(source_type: str, config: dict[str, Any] | ConfigModel,
                 confinement: Confinement | None = None) -> Source:
    """A closed source of ``source_type``; ``config`` is a stored dict or an already parsed model.

    Its path or host is checked here, on the machine that will open it, against ``confinement``
    (default: this process's settings). Raises ValueError for an unknown type, an invalid config
    or a path or host that is not allowed (NotAllowed)."""
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"unknown source type {source_type!r}")
    if isinstance(config, dict):
        config = parse_source_config(source_type, config)
    config = (confinement or Confinement.here()).confine(config)
    return SOURCE_TYPES[source_type](config)  # type: ignore[arg-type]


def check_source(source_type: str, config: dict[str, Any] | ConfigModel) -> SourceCheck:
    """Try the source now: reachable, frame size and fps, or the error."""
    return build_source(source_type, config).check()


__all__ = [
    "SOURCE_TYPES",
    "Source",
    "SourceCheck",
    "SourceEnded",
    "SourceError",
    "SourceFrame",
    "build_source",
    "check_source",
]
