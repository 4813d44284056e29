"""Sinks: webhooks, MQTT topics and folders that receive a pipeline's anomaly events."""

from api.schemas.sinks import SinkCreate, SinkOut, SinkPatch
from api.services.configured_resources import ConfiguredResource, build_router
from infra.configs import SINK_CONFIGS
from infra.database.models import Pipeline, Sink

router = build_router(ConfiguredResource(
    row=Sink,
    singular="sink",
    configs=SINK_CONFIGS,
    create_schema=SinkCreate,
    patch_schema=SinkPatch,
    out_schema=SinkOut,
    pipeline_column=Pipeline.sink_id,
))
