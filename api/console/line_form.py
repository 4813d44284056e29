"""The line form: its flat HTML fields, read into the API's own request bodies, and a line read back into them.

One form says what a line is: a source (type and where to read it), the model (or "follow the
champion"), one sink (type, address, MQTT topic), threshold, fps and data collection. Every value is
checked by the API's schemas (SourceCreate, SinkCreate, PipelineConfig, PipelinePatch), so a bad field
gets the API's message next to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from api.schemas.pipelines import PipelinePatch
from api.schemas.sinks import SinkCreate
from api.schemas.sources import SourceCreate
from infra.configs import PipelineConfig, mask_config
from infra.configs.pipeline import MODEL_THRESHOLD
from infra.database.models import Pipeline, Sink, Source

FOLLOW_CHAMPION = "champion"
# Every mode the API knows, as the form offers them (the defaults of DataCollection in words).
COLLECTION_MODES = {"off": "off: collect nothing", "interval": "interval: a frame every 10 s",
                    "confident_normal": "confident normal: frames scoring below 0.2",
                    "uncertain": "uncertain: frames scoring in the review band, for a person"}

# Per type: the config key the form's one address field fills, and what the field asks for.
SOURCE_ADDRESS = {"video_file": "path", "images_folder": "path", "ip_camera": "url", "webcam": "device_index"}
SOURCE_TYPES = {"video_file": "Video file (path on the line PC)", "images_folder": "Image folder (path)",
                "ip_camera": "IP camera (rtsp:// or http:// URL)", "webcam": "Webcam (device index)"}
SINK_ADDRESS = {"webhook": "url", "mqtt": "broker", "filesystem": "output_dir"}
SINK_TYPES = {"webhook": "Webhook (http:// URL)", "mqtt": "MQTT (mqtt:// broker URL and topic)",
              "filesystem": "Folder (path on the line PC)"}
FIELDS = ("name", "source_type", "source_address", "model", "sink_type", "sink_address", "sink_topic",
          "threshold", "fps", "collection_mode", "review_band")


@dataclass
class LineForm:
    """What the form sent (kept as typed, to show it again) and, once read, the API bodies or the field errors."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    source: Any = None  # a validated SourceCreate variant
    sink: Any = None  # a validated SinkCreate variant
    follow_champion: bool = False
    model_id: uuid.UUID | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.values["name"].strip()


def _message(error: ValidationError) -> str:
    item = error.errors(include_url=False, include_input=False)[0]
    return str(item["msg"]).removeprefix("Value error, ")


def _number(text: str, name: str, errors: dict[str, str]) -> float | None:
    try:
        return float(text)
    except ValueError:
        errors[name] = f"{name} must be a number"
        return None


def _band(text: str, errors: dict[str, str]) -> list[float] | None:
    """`0.4-0.6` (or with an en dash, a comma or spaces) as [low, high]; the range itself is checked by the API."""
    parts = [part for part in text.replace("–", " ").replace("-", " ").replace(",", " ").split() if part]
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        errors["review_band"] = "review band must be two scores, low-high (e.g. 0.4-0.6)"
        return None
    return [low, high]


def _part(adapter: TypeAdapter[Any], kind: str, name: str, type_name: str, config: dict[str, Any],
          errors: dict[str, str]) -> Any:
    """A source or sink body checked by the API's schema; its errors go to the field that holds the value."""
    try:
        return adapter.validate_python({"type": type_name, "name": name, "config": config})
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False):
            key = str(item["loc"][-1]) if item["loc"] else ""
            target = f"{kind}_topic" if key == "topic" else f"{kind}_type" if len(item["loc"]) <= 1 \
                else f"{kind}_address"
            errors.setdefault(target, str(item["msg"]).removeprefix("Value error, "))
        return None


_SOURCE = TypeAdapter(SourceCreate)
_SINK = TypeAdapter(SinkCreate)


def read_form(values: dict[str, str], stored: dict[str, Any] | None = None) -> LineForm:
    """Check every field (all messages at once); `stored` is the line's current config, kept where the form has
    no field for a key (data collection's band, interval, ...)."""
    form = LineForm({key: values.get(key, "") for key in FIELDS})
    errors = form.errors
    line_name = form.name
    try:
        PipelinePatch(name=line_name)
    except ValidationError as error:
        errors["name"] = _message(error)
    label = line_name or "line"

    source_type = form.values["source_type"]
    address: Any = form.values["source_address"].strip()
    if source_type == "webcam":
        address = int(address) if address.isdigit() else address  # a text here gets the schema's message
    source_config = {SOURCE_ADDRESS[source_type]: address} if source_type in SOURCE_ADDRESS else {}
    form.source = _part(_SOURCE, "source", f"{label} · source", source_type, source_config, errors)

    sink_type = form.values["sink_type"]
    sink_config: dict[str, Any] = {SINK_ADDRESS[sink_type]: form.values["sink_address"].strip()} \
        if sink_type in SINK_ADDRESS else {}
    if sink_type == "mqtt":
        sink_config["topic"] = form.values["sink_topic"].strip()
    form.sink = _part(_SINK, "sink", f"{label} · {sink_type or 'sink'}", sink_type, sink_config, errors)

    model = form.values["model"]
    if model == FOLLOW_CHAMPION:
        form.follow_champion = True
    else:
        try:
            form.model_id = uuid.UUID(model)
        except ValueError:
            errors["model"] = "choose a model, or follow the champion"

    threshold_text = form.values["threshold"].strip().lower()
    threshold: Any = MODEL_THRESHOLD if threshold_text == MODEL_THRESHOLD else \
        _number(threshold_text, "threshold", errors)
    fps = _number(form.values["fps"].strip(), "fps", errors)
    collection = {**(stored or {}).get("data_collection", {}), "mode": form.values["collection_mode"]}
    band_text = form.values["review_band"].strip()
    band = _band(band_text, errors) if band_text else None
    if band is not None:
        collection["band"] = band
    candidate = {**(stored or {}), "data_collection": collection,
                 **({"threshold": threshold} if threshold is not None else {}),
                 **({"fps": fps} if fps is not None else {})}
    try:
        form.config = PipelineConfig.model_validate(candidate).model_dump(mode="json")
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False):
            key = str(item["loc"][0]) if item["loc"] else "threshold"
            target = key if key != "data_collection" else \
                "review_band" if "band" in map(str, item["loc"]) else "collection_mode"
            errors.setdefault(target, str(item["msg"]).removeprefix("Value error, "))
    return form


def _address(config: dict[str, Any], key: str) -> str:
    value = mask_config(config).get(key, "")
    return "" if value is None else str(value)


def form_values(pipeline: Pipeline, source: Source, sink: Sink) -> dict[str, str]:
    """A line as the form shows it (secrets in URLs masked; sent back masked, they keep their stored value)."""
    config = pipeline.config
    return {
        "name": pipeline.name,
        "source_type": source.type,
        "source_address": _address(source.config, SOURCE_ADDRESS.get(source.type, "")),
        "model": FOLLOW_CHAMPION if pipeline.follow_champion else str(pipeline.model_id or ""),
        "sink_type": sink.type,
        "sink_address": _address(sink.config, SINK_ADDRESS.get(sink.type, "")),
        "sink_topic": str(sink.config.get("topic", "")),
        "threshold": str(config.get("threshold", 0.5)),
        "fps": f"{config.get('fps', 30.0):g}",
        "collection_mode": config.get("data_collection", {}).get("mode", "off"),
        "review_band": "-".join(f"{score:g}" for score in config.get("data_collection", {}).get("band", [0.4, 0.6])),
    }


NEW_LINE = {"name": "", "source_type": "video_file", "source_address": "", "model": FOLLOW_CHAMPION,
            "sink_type": "webhook", "sink_address": "", "sink_topic": "", "threshold": "0.5", "fps": "10",
            "collection_mode": "off", "review_band": "0.4-0.6"}
