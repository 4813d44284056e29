"""Per-type config models and secret masking (infra.configs)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.configs import (
    MASK,
    SINK_CONFIGS,
    SOURCE_CONFIGS,
    MaskedSecretError,
    MqttConfig,
    PipelineConfig,
    mask_config,
    mask_url,
    parse_sink_config,
    parse_source_config,
    restore_masked,
)

# One config per type with every field set. Every secret value starts with "S3CR3T" so a single
# substring check finds any that leaks.
FULL = {
    ("source", "webcam"): {"device_index": 2, "width": 1280, "height": 720, "fps": 15.0},
    ("source", "ip_camera"): {
        "url": "rtsp://admin:S3CR3T-url@10.0.0.5:554/stream?token=S3CR3T-query&channel=1",
        "username": "admin", "password": "S3CR3T-field", "reconnect": True, "reconnect_delay_s": 3.0,
        "max_reconnect_attempts": 5,
    },
    ("source", "video_file"): {"path": "videos/line 1.mp4", "loop": False},
    ("source", "images_folder"): {"path": "/data/in", "pattern": "*.png", "recursive": True, "loop": False,
                                  "watch": True},
    ("sink", "webhook"): {
        "url": "https://hooks.example.com/a?api_key=S3CR3T-query&x=1", "method": "PUT",
        "headers": {"Authorization": "Bearer S3CR3T-bearer", "X-Api-Key": "S3CR3T-key", "cookie": "S3CR3T-cookie",
                    "X-Auth-Token": "S3CR3T-token", "Content-Type": "application/json"},
        "timeout_s": 5.0, "retries": 2, "backoff_s": 0.5, "include_image": True, "cooldown_s": 2.0,
    },
    ("sink", "mqtt"): {"broker": "mqtts://broker.local:8884", "topic": "factory/line1/anomaly", "username": "u",
                       "password": "S3CR3T-mqtt", "qos": 2, "include_image": True, "cooldown_s": 0.0,
                       "client_id": "inspect-1"},
    ("sink", "filesystem"): {"output_dir": "/data/out", "save_images": False, "cooldown_s": 0.0},
}


def parse(kind: str, type_name: str, data: dict):
    return (parse_source_config if kind == "source" else parse_sink_config)(type_name, data)


def test_every_type_has_a_full_example():
    assert {t for k, t in FULL if k == "source"} == set(SOURCE_CONFIGS)
    assert {t for k, t in FULL if k == "sink"} == set(SINK_CONFIGS)


@pytest.mark.parametrize(("kind", "type_name"), list(FULL))
def test_full_configs_round_trip_unchanged(kind, type_name):
    data = FULL[(kind, type_name)]
    assert parse(kind, type_name, data).model_dump(mode="json") == data


@pytest.mark.parametrize(("kind", "type_name", "data", "expected"), [
    ("source", "webcam", {"device_index": 0}, {"device_index": 0, "width": None, "height": None, "fps": None}),
    ("source", "video_file", {"path": "/v.mp4"}, {"path": "/v.mp4", "loop": True}),
    ("source", "images_folder", {"path": "imgs"},
     {"path": "imgs", "pattern": "*", "recursive": False, "loop": True, "watch": False}),
    ("sink", "filesystem", {"output_dir": "out"}, {"output_dir": "out", "save_images": True, "cooldown_s": 1.0}),
    ("sink", "mqtt", {"broker": "mqtt://b", "topic": "t"},
     {"broker": "mqtt://b", "topic": "t", "username": None, "password": None, "qos": 1, "include_image": False,
      "cooldown_s": 1.0, "client_id": None}),
])
def test_defaults(kind, type_name, data, expected):
    assert parse(kind, type_name, data).model_dump(mode="json") == expected


@pytest.mark.parametrize(("kind", "type_name", "data"), [
    ("source", "webcam", {}),                                        # missing field
    ("source", "webcam", {"device_index": 0, "colour": "red"}),      # unknown field
    ("source", "webcam", {"device_index": "0"}),                     # strict: no str → int
    ("source", "webcam", {"device_index": True}),                    # strict: no bool → int
    ("source", "webcam", {"device_index": -1}),
    ("source", "webcam", {"device_index": 0, "fps": 0}),
    ("source", "ip_camera", {"url": "ftp://cam/stream"}),
    ("source", "ip_camera", {"url": "file:///etc/passwd"}),
    ("source", "ip_camera", {"url": "rtsp:///no-host"}),
    ("source", "ip_camera", {"url": "rtsp://cam:99999/x"}),
    ("source", "ip_camera", {"url": "rtsp://cam/a b"}),
    ("source", "video_file", {"path": "a\x00b"}),
    ("source", "video_file", {"path": "a\nb"}),
    ("source", "video_file", {"path": "   "}),
    ("source", "video_file", {"path": "v.mp4", "loop": "yes"}),
    ("source", "images_folder", {"path": "d", "pattern": "../*.png"}),
    ("source", "images_folder", {"path": "d", "pattern": "sub/*.png"}),
    ("sink", "webhook", {"url": "mqtt://x"}),
    ("sink", "webhook", {"url": "https://x", "method": "GET"}),
    ("sink", "webhook", {"url": "https://x", "headers": {"X-A": "1\r\nInjected: yes"}}),
    ("sink", "webhook", {"url": "https://x", "headers": {"Bad Name": "1"}}),
    ("sink", "webhook", {"url": "https://x", "headers": {"X-A": "1", "x-a": "2"}}),
    ("sink", "webhook", {"url": "https://x", "headers": {"X-A": 1}}),
    ("sink", "webhook", {"url": "https://x", "timeout_s": 0}),
    ("sink", "webhook", {"url": "https://x", "retries": 11}),
    ("sink", "mqtt", {"broker": "tcp://b", "topic": "t"}),
    ("sink", "mqtt", {"broker": "mqtt://u:p@b", "topic": "t"}),          # credentials belong in their fields
    ("sink", "mqtt", {"broker": "mqtt://b", "topic": "a/+/c"}),
    ("sink", "mqtt", {"broker": "mqtt://b", "topic": "a/#"}),
    ("sink", "mqtt", {"broker": "mqtt://b", "topic": "$SYS/x"}),
    ("sink", "mqtt", {"broker": "mqtt://b", "topic": "t", "qos": 3}),
    ("sink", "mqtt", {"broker": "mqtt://b", "topic": "t", "qos": True}),
    ("sink", "mqtt", {"broker": "mqtt://b", "topic": "t", "password": "p"}),  # password needs a username
    ("sink", "filesystem", {"output_dir": "out", "cooldown_s": -1}),
    ("sink", "filesystem", {}),
])
def test_invalid_configs_are_refused(kind, type_name, data):
    with pytest.raises(ValidationError):
        parse(kind, type_name, data)


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match="unknown source type"):
        parse_source_config("usb3", {})
    with pytest.raises(ValueError, match="unknown sink type"):
        parse_sink_config("email", {})


def test_mqtt_broker_address():
    plain = MqttConfig(broker="mqtt://broker.local", topic="t")
    assert (plain.host, plain.port, plain.tls) == ("broker.local", 1883, False)
    tls = MqttConfig(broker="mqtts://10.1.2.3", topic="t")
    assert (tls.host, tls.port, tls.tls) == ("10.1.2.3", 8883, True)
    assert MqttConfig(broker="mqtt://b:11883", topic="t").port == 11883


def test_pipeline_config():
    off = {"mode": "off", "interval_s": 10.0, "score_below": 0.2, "band": [0.4, 0.6], "max_per_hour": 60}
    assert PipelineConfig().model_dump() == {"threshold": 0.5, "fps": 30.0, "data_collection": off}
    assert PipelineConfig(threshold=0, fps=120).model_dump() == {"threshold": 0.0, "fps": 120.0, "data_collection": off}
    for bad in ({"threshold": 1.01}, {"threshold": -0.1}, {"fps": 0}, {"fps": 121}, {"speed": 1}):
        with pytest.raises(ValidationError):
            PipelineConfig.model_validate(bad)


# --- masking ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "type_name"), list(FULL))
def test_mask_hides_every_secret_and_nothing_else(kind, type_name):
    data = FULL[(kind, type_name)]
    masked = mask_config(data)
    assert "S3CR3T" not in repr(masked)
    # Everything that is not a secret stays readable: a masked config is still useful in a UI.
    assert {key for key in data if masked[key] == data[key]} >= set(data) - {"url", "password", "headers"}


def test_mask_details():
    masked = mask_config(FULL[("sink", "webhook")])
    assert masked["headers"] == {"Authorization": MASK, "X-Api-Key": MASK, "cookie": MASK, "X-Auth-Token": MASK,
                                 "Content-Type": "application/json"}
    assert masked["url"] == f"https://hooks.example.com/a?api_key={MASK}&x=1"
    camera = mask_config(FULL[("source", "ip_camera")])
    assert camera["url"] == f"rtsp://admin:{MASK}@10.0.0.5:554/stream?token={MASK}&channel=1"
    assert camera["username"] == "admin" and camera["password"] == MASK
    # Absent secrets stay absent rather than looking set.
    assert mask_config({"password": None, "token": ""}) == {"password": None, "token": ""}


@pytest.mark.parametrize(("url", "expected"), [
    ("rtsp://user:p%40ss@cam/s", f"rtsp://user:{MASK}@cam/s"),
    ("rtsp://user:a:b@cam/s", f"rtsp://user:{MASK}@cam/s"),               # ':' inside the password
    ("https://s3cr3t-token@host/x", f"https://{MASK}@host/x"),            # a lone user-info is often a token
    ("rtsp://cam:554/s", "rtsp://cam:554/s"),
    ("https://h/x?Access_Token=abc", f"https://h/x?Access_Token={MASK}"),
    ("https://h/x?flag&page=2", "https://h/x?flag&page=2"),
])
def test_mask_url(url, expected):
    assert mask_url(url) == expected


def test_masked_values_sent_back_keep_the_stored_secrets():
    for data in FULL.values():
        assert restore_masked(mask_config(data), data) == data


def test_restore_takes_changed_values_and_keeps_masked_ones():
    stored = FULL[("source", "ip_camera")]
    edited = mask_config(stored) | {"password": "new-pass", "reconnect": False,
                                    "url": f"rtsp://admin:{MASK}@10.0.0.6/other?token={MASK}"}
    restored = restore_masked(edited, stored)
    assert restored["password"] == "new-pass" and restored["reconnect"] is False
    assert restored["url"] == "rtsp://admin:S3CR3T-url@10.0.0.6/other?token=S3CR3T-query"


def test_restore_matches_header_names_case_insensitively():
    stored = {"headers": {"Authorization": "Bearer S3CR3T"}}
    restored = restore_masked({"headers": {"authorization": MASK}}, stored)
    assert restored == {"headers": {"authorization": "Bearer S3CR3T"}}


@pytest.mark.parametrize("new", [
    {"password": MASK},
    {"headers": {"X-Api-Key": MASK}},
    {"url": f"rtsp://admin:{MASK}@cam/s"},
    {"url": f"https://h/x?token={MASK}"},
])
def test_restore_refuses_a_mask_with_nothing_stored(new):
    with pytest.raises(MaskedSecretError):
        restore_masked(new, {"url": "rtsp://cam/s", "headers": {}})
