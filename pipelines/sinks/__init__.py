"""Event sinks by type; configs are parsed with the shared models in ``infra.configs.sinks``."""

from __future__ import annotations

from typing import Any

from infra.configs.base import ConfigModel
from infra.configs.confinement import Confinement
from infra.configs.sinks import parse_sink_config
from pipelines.sinks.base import Sink, SinkWorker
from pipelines.sinks.filesystem import FilesystemSink
from pipelines.sinks.mqtt import MqttSink
from pipelines.sinks.webhook import WebhookSink

SINK_TYPES: dict[str, type[Sink]] = {
    "webhook": WebhookSink,
    "mqtt": MqttSink,
    "filesystem": FilesystemSink,
}


def build_sink_worker(sink_type: str, name: str, config: dict[str, Any] | ConfigModel,
                      confinement: Confinement | None = None) -> SinkWorker:
    """A (not yet started) worker around a sink of ``sink_type`` with the config's cooldown.

    Its output folder or host is checked here, on the machine that will use it, against ``confinement``
    (default: this process's settings). Raises ValueError for an unknown type, an invalid config or
    a path or host that is not allowed (NotAllowed), OSError when the sink cannot be set up."""
    if sink_type not in SINK_TYPES:
        raise ValueError(f"unknown sink type {sink_type!r}")
    if isinstance(config, dict):
        config = parse_sink_config(sink_type, config)
    config = (confinement or Confinement.here()).confine(config)
    sink = SINK_TYPES[sink_type](config)  # type: ignore[arg-type]
    return SinkWorker(sink, name, cooldown_s=config.cooldown_s)  # type: ignore[union-attr]


__all__ = ["SINK_TYPES", "Sink", "SinkWorker", "build_sink_worker"]
