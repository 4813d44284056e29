"""Publishes each event as JSON to an MQTT topic (paho-mqtt 2.x, ``mqtt://`` or TLS ``mqtts://``).

paho's network thread connects in the background and reconnects with backoff after the
broker goes away; a publish waits for the connection and the broker's acknowledgement
(QoS 1 by default) for at most ``PUBLISH_TIMEOUT_S`` and otherwise counts as a failure.

Before every connection attempt the broker's name is checked again against the outbound rule
(infra/configs/outbound.py); a refused broker counts as a failed connection (retried with backoff,
so a DNS change that makes it allowed again is picked up).
"""

from __future__ import annotations

import logging
import threading
import uuid
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from infra.configs.confinement import Confinement, NotAllowed
from infra.configs.sinks import MqttConfig
from pipelines.events import AnomalyEvent
from pipelines.sinks.base import Sink

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 10.0


class MqttSink(Sink):
    type = "mqtt"

    def __init__(self, config: MqttConfig) -> None:
        super().__init__()
        self.config = config
        parts = urlsplit(config.broker)
        self.host = parts.hostname or ""
        self.port = config.port
        self._connected = threading.Event()
        client_id = config.client_id or f"geti-inspect-{uuid.uuid4().hex[:12]}"
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if config.username:
            self._client.username_pw_set(config.username, config.password)
        if parts.scheme.lower() == "mqtts":
            self._client.tls_set()
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_pre_connect = self._check_broker
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()

    def _check_broker(self, client, userdata) -> None:
        """Before each (re)connection: a broker that now resolves to a refused address is not connected."""
        try:
            Confinement.here().host(self.config.broker)
        except NotAllowed as error:
            log.warning("MQTT broker refused by the outbound rule: %s", error)
            raise ConnectionRefusedError(str(error)) from None  # paho retries an OSError with backoff

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        log.info("MQTT connected to %s:%d", self.host, self.port)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self.stopping.is_set():
            log.warning("MQTT disconnected from %s:%d (%s); reconnecting", self.host, self.port, reason_code)

    def send(self, event: AnomalyEvent) -> None:
        if not self._connected.wait(PUBLISH_TIMEOUT_S):
            raise ConnectionError(f"not connected to MQTT broker {self.host}:{self.port}")
        info = self._client.publish(self.config.topic, event.to_json(self.config.include_image), qos=self.config.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(timeout=PUBLISH_TIMEOUT_S)
        if not info.is_published():
            raise TimeoutError(f"MQTT broker did not acknowledge within {PUBLISH_TIMEOUT_S:g} s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
