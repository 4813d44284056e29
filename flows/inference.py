"""The `inference` deployment's flow: one active pipeline, running until it is stopped.

A run owns one `PipelineRuntime` (source → OpenVINO model → sinks) and its control endpoint
(captures, WebRTC signalling), which the API proxies to with the random bearer token stored
on the row. While it runs it:

- writes the runtime's metrics and a heartbeat to the row every second (the runtime's reporter
  thread calls :class:`StatusWriter`);
- watches the pipeline row and applies a new threshold, fps, data collection or model without a restart
  (a pipeline whose threshold is ``"model"`` takes each model's own threshold with it);
- stores the frames its data collection picks as project media (``infra/collected_media.py``).

Stopping is cancelling the flow run: the worker sends SIGTERM, Prefect raises TerminationSignal
here, and the run stops the runtime (flushing sinks), marks the row stopped and ends CANCELLED.
A pipeline that cannot start (missing file, unreachable camera, model without files) ends
`failed` with the reason and the run FAILED, with no retries: never a crash loop.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.exceptions import TerminationSignal
from sqlalchemy import update

from flows.common import current_job_id, flow_settings
from flows.run_names import pipeline_run_name
from infra.active_pipelines import transition
from infra.collected_media import CollectedMediaWriter
from infra.configs import PipelineConfig
from infra.database.engine import session_scope
from infra.database.models import ActivePipeline, Model, Pipeline, Sink, Source, utcnow
from infra.evaluation import model_threshold
from infra.model_cache import ModelCache
from infra.openvino_model import ModelLoadError
from infra.settings import Settings
from infra.storage import build_store
from pipelines.control import ControlServer
from pipelines.runtime import PipelineRuntime, SinkSpec

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0
# Imported lazily by a line (SQLAlchemy's SQLite driver, the local object store); the inference worker's
# fork server imports them ahead (infra/orchestration/warm_engine.py), so that lines share them.
WARM_START_IMPORTS = ("sqlite3", "infra.storage.local")


class PipelineFlowError(RuntimeError):
    """The active pipeline cannot run (its rows are missing or not usable) or failed while running."""


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the runtime needs, read from the rows once at start."""

    active_id: uuid.UUID
    pipeline_id: uuid.UUID
    project_id: uuid.UUID
    model_id: uuid.UUID
    source_id: uuid.UUID
    sink_id: uuid.UUID
    source_type: str
    source_name: str
    source_config: dict[str, Any]
    sink: SinkSpec
    config: PipelineConfig
    model_threshold: float  # the threshold the model ships with (for "threshold": "model")

    def runtime_config(self) -> PipelineConfig:
        """The config with its threshold resolved to a number, as the runtime takes it."""
        return self.config.model_copy(update={"threshold": self.config.threshold_for(self.model_threshold)})


def load_spec(database_url: str, active_id: uuid.UUID) -> PipelineSpec | None:
    """The rows of an active pipeline that is about to start; None when it was stopped before it began."""
    with session_scope(database_url) as session:
        active = session.get(ActivePipeline, active_id)
        if active is None:
            raise PipelineFlowError(f"active pipeline {active_id} does not exist")
        if active.status != "starting":
            return None
        pipeline = session.get(Pipeline, active.pipeline_id)
        if pipeline is None:
            raise PipelineFlowError(f"pipeline {active.pipeline_id} does not exist")
        if pipeline.model_id is None:
            raise PipelineFlowError(f"pipeline {pipeline.id} has no model (it follows a champion not promoted yet)")
        model = session.get(Model, pipeline.model_id)
        source = session.get(Source, pipeline.source_id)
        sink = session.get(Sink, pipeline.sink_id)
        if model is None or source is None or sink is None:
            raise PipelineFlowError(f"pipeline {pipeline.id} lost its model, source or sink")
        if model.status != "ready":
            raise PipelineFlowError(f"model {model.id} is {model.status}, not ready")
        return PipelineSpec(
            active_id=active.id, pipeline_id=pipeline.id, project_id=pipeline.project_id, model_id=model.id,
            source_id=source.id, sink_id=sink.id,
            source_type=source.type, source_name=source.name, source_config=dict(source.config),
            sink=SinkSpec(sink.type, sink.name, dict(sink.config)),
            config=PipelineConfig.model_validate(pipeline.config or {}), model_threshold=model_threshold(model.metrics))


class StatusWriter:
    """Writes the runtime's metrics and a heartbeat to the row; called every second by the runtime.

    While the pipeline runs, `message` tells what is wrong without stopping it (a camera that
    reconnects, a new model that failed to load); it is cleared once that is over.
    """

    def __init__(self, database_url: str, active_id: uuid.UUID) -> None:
        self._database_url = database_url
        self._active_id = active_id
        self._notes: dict[str, str] = {}
        self._written_message: str | None = None
        self._lock = threading.Lock()

    def note(self, topic: str, text: str | None) -> None:
        with self._lock:
            if text:
                self._notes[topic] = text
            else:
                self._notes.pop(topic, None)

    def __call__(self, status: dict[str, Any]) -> None:
        source = status.get("source") or {}
        error = source.get("error")
        self.note("source", f"source {source.get('state', 'error')}: {error}" if error else None)
        with self._lock:
            message = "; ".join(self._notes.values()) or None
        with session_scope(self._database_url) as session:
            session.execute(update(ActivePipeline).where(ActivePipeline.id == self._active_id)
                            .values(metrics=status.get("metrics") or {}, heartbeat_at=utcnow()))
            if message != self._written_message and status.get("state") == "running":
                transition(session, self._active_id, "running", message=message, only_from=("running",))
                self._written_message = message


class ConfigWatcher:
    """Applies changes of the pipeline row (threshold, fps, model) to the running runtime.

    A new source or sink needs a restart; the row's message says so until it is restarted.
    """

    def __init__(self, spec: PipelineSpec, runtime: PipelineRuntime, models: ModelCache, writer: StatusWriter,
                 database_url: str) -> None:
        self._spec = spec
        self._runtime = runtime
        self._models = models
        self._writer = writer
        self._database_url = database_url
        self._config = spec.config
        self._model_id = spec.model_id
        self._model_threshold = spec.model_threshold
        self._refused_model: uuid.UUID | None = None

    def poll(self) -> bool:
        """One look at the rows; False when the active pipeline row is gone (its project was deleted)."""
        with session_scope(self._database_url) as session:
            if session.get(ActivePipeline, self._spec.active_id) is None:
                return False
            pipeline = session.get(Pipeline, self._spec.pipeline_id)
            if pipeline is None:
                return False
            config = PipelineConfig.model_validate(pipeline.config or {})
            model_id = pipeline.model_id or self._model_id  # a follower never loses its model
            rewired = (pipeline.source_id, pipeline.sink_id) != (self._spec.source_id, self._spec.sink_id)
            model = session.get(Model, model_id) if model_id != self._model_id else None
            model_status = model.status if model is not None else None
            new_threshold = model_threshold(model.metrics) if model is not None else None
        if config != self._config:
            self._runtime.update_config(threshold=config.threshold_for(self._model_threshold), fps=config.fps,
                                        collection=config.data_collection)
            log.info("pipeline %s: threshold %s, fps %s, collection %s", self._spec.pipeline_id, config.threshold,
                     config.fps, config.data_collection.mode)
            self._config = config
        if model_id != self._model_id and model_id != self._refused_model:
            self._swap_model(model_id, model_status, new_threshold)
        self._writer.note("restart", "the source or sink changed: restart the pipeline to use it" if rewired else None)
        return True

    def _swap_model(self, model_id: uuid.UUID, status: str | None, threshold: float | None) -> None:
        if status != "ready" or threshold is None:
            self._writer.note("model", f"model {model_id} is {status or 'missing'}; still using {self._model_id}")
            return  # looked at again on the next poll: it may become ready
        try:
            # The model and (with "threshold": "model") its threshold change in one call.
            self._runtime.update_config(model_dir=self._models.get(model_id),
                                        threshold=self._config.threshold_for(threshold))
        except (ModelLoadError, OSError, RuntimeError) as error:
            self._refused_model = model_id
            self._writer.note("model", f"model {model_id} could not be loaded ({error}); still using {self._model_id}")
            log.error("pipeline %s: model swap to %s failed: %s", self._spec.pipeline_id, model_id, error)
            return
        self._model_id = model_id
        self._model_threshold = threshold
        self._writer.note("model", None)
        with session_scope(self._database_url) as session:
            session.execute(update(ActivePipeline).where(ActivePipeline.id == self._spec.active_id)
                            .values(model_id=model_id))
        log.info("pipeline %s now runs model %s", self._spec.pipeline_id, model_id)


def _cancelled_by_user(database_url: str, active_id: uuid.UUID) -> bool:
    """A SIGTERM is a stop when someone asked for one (row stopping, or the run cancelling in Prefect)."""
    with session_scope(database_url) as session:
        row = session.get(ActivePipeline, active_id)
        if row is None or row.status == "stopping":
            return True
    run_id = current_job_id()
    if run_id is None:
        return False
    try:
        with get_client(sync_client=True) as client:
            state_type = client.read_flow_run(run_id).state_type
    except Exception:  # noqa: BLE001 - Prefect unreachable: treat as a shutdown, not a stop
        log.exception("could not read the flow run state")
        return False
    return state_type in (StateType.CANCELLING, StateType.CANCELLED)


def _record_end(database_url: str, active_id: uuid.UUID, status: str, message: str | None) -> None:
    try:
        with session_scope(database_url) as session:
            transition(session, active_id, status, message=message)
    except Exception:  # noqa: BLE001 - the API settles the row from the run state instead
        log.exception("could not record that active pipeline %s is %s", active_id, status)


class LivePipeline:
    """The runtime plus its control endpoint, started and stopped together."""

    def __init__(self, settings: Settings, spec: PipelineSpec, models: ModelCache, writer: StatusWriter) -> None:
        self.runtime = PipelineRuntime.from_config(
            pipeline_id=str(spec.pipeline_id), active_pipeline_id=str(spec.active_id),
            source_type=spec.source_type, source_name=spec.source_name, source_config=spec.source_config,
            source_id=str(spec.source_id), sinks=[spec.sink], model_dir=models.get(spec.model_id),
            config=spec.runtime_config(), on_status=writer,
            model_host=model_host_socket(settings) if settings.share_models else None,
            save_collected=CollectedMediaWriter(settings.resolved_database_url, build_store(settings), spec.project_id,
                                                spec.pipeline_id, settings.max_collected_media,
                                                settings.thumbnail_size))
        self.control = ControlServer(self.runtime, host=settings.pipeline_control_host,
                                     port=settings.pipeline_control_port_range,
                                     advertise_host=settings.pipeline_control_advertise_host)

    def start(self) -> None:
        self.runtime.start()  # PipelineStartError (source, model or sink unusable) with the reason
        self.control.start()

    def stop(self) -> None:
        self.control.stop()
        self.runtime.stop()


def cache_root(settings: Settings) -> Path:
    """Where this worker keeps model IRs (its own data dir: workers may not share the API's disk)."""
    return settings.resolved_data_dir / "cache" / "models"


def model_host_socket(settings: Settings) -> Path:
    """The socket of this worker's model host: in its data dir, so the lines of one worker share it."""
    return settings.resolved_data_dir.resolve() / "run" / "model-host.sock"


def _serve(spec: PipelineSpec, live: LivePipeline, watcher: ConfigWatcher, database_url: str) -> tuple[str, str | None]:
    """Publish the control endpoint, then watch the rows until the runtime ends; returns (status, message)."""
    with session_scope(database_url) as session:
        transition(session, spec.active_id, "running", only_from=("starting",), control_url=live.control.url,
                   control_token=live.control.token, started_at=utcnow(), model_id=spec.model_id)
    log.info("active pipeline %s running; control endpoint %s", spec.active_id, live.control.url)
    while not live.runtime.wait(WATCH_INTERVAL_S):
        try:
            if not watcher.poll():
                log.info("active pipeline %s was deleted: stopping", spec.active_id)
                break
        except Exception:  # noqa: BLE001 - a database hiccup must not stop the line
            log.exception("watching pipeline %s failed; retrying", spec.pipeline_id)
    live.stop()
    status = live.runtime.status()
    return ("failed" if status["state"] == "failed" else "stopped"), status.get("message")


# validate_parameters=False: Prefect would build a pydantic model of this signature in every run (about 4 MiB
# of a line's private memory) to check one string, which `uuid.UUID(active_pipeline_id)` checks anyway.
@flow(name="run-pipeline", flow_run_name=pipeline_run_name, retries=0, persist_result=False,
      validate_parameters=False)
def run_pipeline(active_pipeline_id: str) -> str:
    """Run the active pipeline until it is cancelled, its source ends, or it fails."""
    settings = flow_settings()
    database_url = settings.resolved_database_url
    active_id = uuid.UUID(active_pipeline_id)
    live: LivePipeline | None = None
    try:
        spec = load_spec(database_url, active_id)
        if spec is None:
            log.info("active pipeline %s was stopped before it started", active_id)
            return "withdrawn"
        models = ModelCache(build_store(settings), cache_root(settings))
        writer = StatusWriter(database_url, active_id)
        live = LivePipeline(settings, spec, models, writer)
        live.start()
        status, message = _serve(spec, live, ConfigWatcher(spec, live.runtime, models, writer, database_url),
                                 database_url)
    except TerminationSignal:
        if live is not None:
            live.stop()
        if _cancelled_by_user(database_url, active_id):
            _record_end(database_url, active_id, "stopped", None)
        else:
            _record_end(database_url, active_id, "failed", "the pipeline process was terminated (worker shut down)")
        raise
    except BaseException as error:
        if live is not None:
            live.stop()
        _record_end(database_url, active_id, "failed", str(error) or type(error).__name__)
        raise
    _record_end(database_url, active_id, status, message)
    if status == "failed":
        raise PipelineFlowError(message or "the pipeline failed")
    return status
