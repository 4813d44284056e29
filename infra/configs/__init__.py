"""Per-type configs of sources, sinks and pipelines, shared by the API and the pipeline runtime."""

from infra.configs.base import ConfigModel
from infra.configs.pipeline import DataCollection, PipelineConfig
from infra.configs.secrets import MASK, MaskedSecretError, mask_config, mask_url, restore_masked
from infra.configs.sinks import (
    SINK_CONFIGS,
    FilesystemConfig,
    MqttConfig,
    SinkConfig,
    WebhookConfig,
    parse_sink_config,
)
from infra.configs.sources import (
    SOURCE_CONFIGS,
    ImagesFolderConfig,
    IpCameraConfig,
    SourceConfig,
    VideoFileConfig,
    WebcamConfig,
    parse_source_config,
)

__all__ = [
    "MASK",
    "SINK_CONFIGS",
    "SOURCE_CONFIGS",
    "ConfigModel",
    "DataCollection",
    "FilesystemConfig",
    "ImagesFolderConfig",
    "IpCameraConfig",
    "MaskedSecretError",
    "MqttConfig",
    "PipelineConfig",
    "SinkConfig",
    "SourceConfig",
    "VideoFileConfig",
    "WebcamConfig",
    "WebhookConfig",
    "mask_config",
    "mask_url",
    "parse_sink_config",
    "parse_source_config",
    "restore_masked",
]
