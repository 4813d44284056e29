"""The console's line form read into the API's bodies: every bad field gets its own message at once."""

from __future__ import annotations

import uuid

from api.console.line_form import NEW_LINE, read_form
from api.console.schedule import cron_words


def form(**fields: str) -> dict[str, str]:
    return {**NEW_LINE, "name": "Gate", "source_address": "/data/line/gate.avi",
            "sink_address": "http://127.0.0.1:8080/hook", **fields}


def test_a_good_form_becomes_the_api_bodies() -> None:
    model = uuid.uuid4()
    read = read_form(form(model=str(model), threshold="model", fps="12.5", collection_mode="uncertain"))
    assert read.errors == {}
    assert (read.source.type, read.source.config.path) == ("video_file", "/data/line/gate.avi")
    assert (read.sink.type, read.sink.config.url) == ("webhook", "http://127.0.0.1:8080/hook")
    assert read.model_id == model and read.follow_champion is False
    assert read.config["threshold"] == "model" and read.config["fps"] == 12.5
    assert read.config["data_collection"]["mode"] == "uncertain"
    assert read.config["data_collection"]["band"] == [0.4, 0.6]


def test_the_review_band_is_read_in_any_usual_spelling_and_checked_by_the_api() -> None:
    for text in ("0.3-0.7", "0.3 – 0.7", "0.3, 0.7"):
        assert read_form(form(collection_mode="uncertain", review_band=text)).config["data_collection"]["band"] \
            == [0.3, 0.7]
    assert "two scores" in read_form(form(review_band="wide")).errors["review_band"]
    assert "low <= high" in read_form(form(review_band="0.8-0.2")).errors["review_band"]


def test_every_bad_field_gets_the_apis_message_next_to_it() -> None:
    read = read_form(form(name=" ", source_type="webcam", source_address="front", model="", sink_type="mqtt",
                          sink_address="http://broker", sink_topic="a/#", threshold="1.5", fps="fast",
                          collection_mode="sometimes"))
    assert set(read.errors) == {"name", "source_address", "model", "sink_address", "sink_topic", "threshold",
                                "fps", "collection_mode"}
    assert "mqtt" in read.errors["sink_address"] and "wildcards" in read.errors["sink_topic"]
    assert read.errors["fps"] == "fps must be a number"
    assert "less than or equal to 1" in read.errors["threshold"]


def test_fields_the_form_lacks_keep_the_lines_stored_values() -> None:
    stored = {"threshold": 0.4, "fps": 10.0, "data_collection": {"mode": "interval", "interval_s": 3.0}}
    read = read_form(form(collection_mode="uncertain"), stored)
    assert read.config["data_collection"]["interval_s"] == 3.0 and read.config["data_collection"]["mode"] == "uncertain"


def test_a_cron_reads_in_plain_words() -> None:
    assert cron_words("30 2 * * 1-5") == "At 02:30, Monday through Friday"
    assert cron_words("*/15 * * * *") == "Every 15 minutes"
    assert cron_words("not a cron") is None


def test_the_form_offers_every_collection_mode_the_api_knows() -> None:
    from typing import get_args

    from api.console.line_form import COLLECTION_MODES
    from infra.configs.pipeline import CollectionMode

    assert set(COLLECTION_MODES) == set(get_args(CollectionMode))
