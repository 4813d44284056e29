"""Sinks: webhooks, MQTT topics and folders that receive a pipeline's anomaly events."""

from api.services.configured_resources import SINKS, build_router

router = build_router(SINKS)
