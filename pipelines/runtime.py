"""The live pipeline: source → OpenVINO model → overlay → sinks, with metrics, captures and hot updates.

Threads and queues (all bounded, so memory stays flat however slow a consumer is)::

    reader ──frames(1)──▶ processor ──▶ AsyncScorer (N OpenVINO requests in flight)
      │ paces to fps          pre-process       │ results, re-ordered
      │                                         ▼
      │                        LatestFrame (captures, WebRTC viewers)
      │                        SinkWorker queues(16) ──▶ webhook / mqtt / filesystem
      │                        FrameCollector queue(4) ──▶ project media (data collection)
      └ file sources wait when the processor is busy; live sources drop the stale frame instead

Only decoding, pre-processing and inference sit on the frame path: the overlay (heat map,
label, score) and image encoding happen lazily, on the thread of whoever wants the picture
(a viewer, a capture, a sink that sends images), and at most once per frame.

A reporter thread hands ``status()`` (state, metrics, source and sink health) to ``on_status``
every ``report_interval_s``. ``update_config`` changes threshold and fps at once and swaps the
model after compiling the new one, without stopping the stream. A source or model that cannot
start makes ``start`` raise :class:`PipelineStartError` after the status turned ``failed``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.configs import ConfigModel, DataCollection, PipelineConfig
from infra.openvino_model import AnomalyModel, ModelLoadError, Prediction
from pipelines.collection import FrameCollector, SaveCollected
from pipelines.events import AnomalyEvent, SourceInfo, iso_utc
from pipelines.frames import AnnotatedFrame, LatestFrame, encode_image
from pipelines.inference import AsyncScorer
from pipelines.metrics import MetricsTracker, PeriodicReporter
from pipelines.shared_model import HostGone, SharedModel, SharedScorer, open_model, scorer_for
from pipelines.sinks import SinkWorker, build_sink_worker
from pipelines.sources import Source, SourceEnded, SourceError, SourceFrame, build_source

log = logging.getLogger(__name__)

StatusCallback = Callable[[dict[str, Any]], None]

_END = object()  # end of stream marker in the frame queue
# One decoded frame waiting is enough to keep the scorer busy; more would only add latency.
FRAME_QUEUE_SIZE = 1
# Consecutive frames that fail inference before the pipeline gives up (a broken model, not a bad frame).
MAX_CONSECUTIVE_FRAME_ERRORS = 25
# Times a line reopens its model after the worker's model host died; after that it compiles its own copy.
MAX_HOST_LOSSES = 3


class PipelineStartError(RuntimeError):
    """The pipeline could not start (source, model or sink); the status says ``failed`` with this reason."""


class NoFrameYet(LookupError):  # noqa: N818 - reads better at the call site
    """A capture was asked for before the first frame was processed."""


@dataclass(frozen=True)
class SinkSpec:
    type: str
    name: str
    config: dict[str, Any] | ConfigModel


@dataclass(frozen=True)
class Capture:
    png: bytes  # annotated (heat map, label, score)
    anomaly_score: float
    is_anomalous: bool
    frame_index: int
    timestamp: datetime
    raw_png: bytes  # the frame as the source delivered it: what a dataset wants


def validate_settings(threshold: float | None, fps: float | None) -> None:
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must be between 0 and 1")
    if fps is not None and not 0 < fps <= 1000:
        raise ValueError("fps must be above 0 and at most 1000 (or None for no pacing)")


class _Keep:
    """Marks an ``update_config`` argument that was not given (None is a real value for fps)."""


KEEP = _Keep()


@dataclass
class _Failure:
    message: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, message: str) -> None:
        with self.lock:
            if self.message is None:
                self.message = message


class PipelineRuntime:
    def __init__(
        self,
        *,
        pipeline_id: str,
        active_pipeline_id: str,
        source: Source,
        source_info: SourceInfo,
        model_dir: Path,
        sinks: list[SinkWorker],
        threshold: float = 0.5,
        fps: float | None = None,
        on_status: StatusCallback | None = None,
        report_interval_s: float = 1.0,
        device: str = "CPU",
        performance_hint: str = "THROUGHPUT",
        metrics: MetricsTracker | None = None,
        collector: FrameCollector | None = None,
        model_host: Path | None = None,
    ) -> None:
        validate_settings(threshold, fps)
        self.pipeline_id = pipeline_id
        self.active_pipeline_id = active_pipeline_id
        self.source = source
        self.source_info = source_info
        self.sinks = sinks
        self.device = device
        self.performance_hint = performance_hint
        self.metrics = metrics or MetricsTracker()
        self.collector = collector
        self.latest = LatestFrame()
        self._model_dir = Path(model_dir)
        self._model_host = model_host  # the worker's model host socket: lines running one model share it
        self._model: AnomalyModel | SharedModel | None = None
        self._model_loaded_at: datetime | None = None
        self._model_lock = threading.Lock()  # one model load at a time
        self._threshold = threshold
        self._fps = fps
        self._frames: queue.Queue[object] = queue.Queue(maxsize=FRAME_QUEUE_SIZE)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._state_lock = threading.Lock()
        self._state = "created"
        self._message: str | None = None
        self._failure = _Failure()
        self._source_ended = False
        self._frames_read = 0
        self._frames_dropped = 0
        self._frame_errors = 0
        self._host_losses = 0
        self._submitted = 0  # frames handed to the scorer, in order
        self._published = 0  # next submission number to publish
        self._ready: dict[int, tuple[int, SourceFrame, Prediction] | None] = {}
        self._order_lock = threading.Lock()
        self._started_at: datetime | None = None
        self._reader = threading.Thread(target=self._read_loop, name="pipeline-reader", daemon=True)
        self._processor = threading.Thread(target=self._process_loop, name="pipeline-processor", daemon=True)
        self._finish_lock = threading.Lock()
        self._finished = False
        self._reporter = PeriodicReporter(self.status, on_status, report_interval_s) if on_status else None

    @classmethod
    def from_config(
        cls,
        *,
        pipeline_id: str,
        active_pipeline_id: str,
        source_type: str,
        source_name: str,
        source_config: dict[str, Any] | ConfigModel,
        sinks: list[SinkSpec],
        model_dir: Path,
        config: dict[str, Any] | PipelineConfig | None = None,
        source_id: str | None = None,
        save_collected: SaveCollected | None = None,
        **options: Any,
    ) -> PipelineRuntime:
        """Build from the stored rows' configs; an invalid config or a sink that cannot even be set up
        (say, an output folder that cannot be created) raises PipelineStartError."""
        try:
            settings = config if isinstance(config, PipelineConfig) else PipelineConfig.model_validate(config or {})
            source = build_source(source_type, source_config)
        except (KeyError, ValueError) as error:
            raise PipelineStartError(f"invalid pipeline or {source_type!r} source config: {error}") from error
        workers = []
        try:
            for spec in sinks:
                workers.append(build_sink_worker(spec.type, spec.name, spec.config))
        except (OSError, ValueError) as error:
            for worker in workers:
                worker.sink.close()
            raise PipelineStartError(f"sink {spec.name!r} ({spec.type}): {error}") from error
        info = SourceInfo(type=source_type, name=source_name, id=source_id)
        return cls(
            pipeline_id=pipeline_id,
            active_pipeline_id=active_pipeline_id,
            source=source,
            source_info=info,
            model_dir=model_dir,
            sinks=workers,
            threshold=settings.threshold,
            fps=settings.fps,
            collector=FrameCollector(save_collected, settings.data_collection) if save_collected else None,
            **options,
        )

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Load the model, open the source, start the threads; raises PipelineStartError (status ``failed``)."""
        self._set_state("starting")
        self._started_at = datetime.now(UTC)
        if self._reporter:
            self._reporter.start()
        try:
            self._model = open_model(self._model_dir, self.device, self.performance_hint, self._model_host)
            self._model_loaded_at = datetime.now(UTC)
            self.source.open()
        except (ModelLoadError, SourceError) as error:
            self._failure.set(str(error))
            self._finish()
            raise PipelineStartError(str(error)) from error
        for worker in self.sinks:
            worker.start()
        if self.collector:
            self.collector.start()
        self._set_state("running")
        self._reader.start()
        self._processor.start()
        log.info("pipeline %s running (active %s)", self.pipeline_id, self.active_pipeline_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading, let in-flight events reach the sinks (bounded), release everything."""
        with self._state_lock:
            if self._state in ("stopped", "failed"):
                return
            self._state = "stopping"
        self._stop.set()
        self._finish(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the pipeline has stopped or failed (True) or the timeout passed (False)."""
        return self._done.wait(timeout)

    @property
    def state(self) -> str:
        with self._state_lock:
            return self._state

    def _set_state(self, state: str, message: str | None = None) -> None:
        with self._state_lock:
            self._state, self._message = state, message

    def _finish(self, timeout: float = 10.0) -> None:
        with self._finish_lock:
            if self._finished:
                return
            self._finished = True
        self._stop.set()
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        for thread in (self._reader, self._processor):
            if thread.is_alive() and thread is not current:
                thread.join(max(0.1, deadline - time.monotonic()))
        for worker in self.sinks:
            worker.sink.stopping.set()  # cut every sink's retry waits short before flushing any of them
        for worker in self.sinks:
            worker.close(timeout=max(0.5, min(3.0, deadline - time.monotonic())))
        if self.collector:
            self.collector.stop(timeout=max(0.5, min(3.0, deadline - time.monotonic())))
        try:
            self.source.close()
        except Exception:
            log.exception("closing the source failed")
        if self._model is not None:
            self._model.close()
        if self._failure.message is not None:
            self._set_state("failed", self._failure.message)
            log.error("pipeline %s failed: %s", self.pipeline_id, self._failure.message)
        else:
            self._set_state("stopped", "source ended" if self._source_ended else None)
        if self._reporter:
            self._reporter.stop()
        self._done.set()

    # ---------------------------------------------------------------- threads

    def _read_loop(self) -> None:
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                fps = self._fps
                if fps:
                    delay = next_due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    # Keep the cadence, but never try to catch up on time lost in a stall.
                    next_due = max(next_due + 1.0 / fps, time.monotonic())
                frame = self.source.read(timeout=0.5)
                if frame is None:
                    continue
                self._frames_read += 1
                self._enqueue(frame)
        except SourceEnded:
            self._source_ended = True
            log.info("pipeline %s: source ended", self.pipeline_id)
        except SourceError as error:
            self._failure.set(str(error))
        except Exception as error:
            log.exception("reader crashed")
            self._failure.set(f"source error: {type(error).__name__}: {error}")
        finally:
            self._put_blocking(_END)

    def _enqueue(self, frame: SourceFrame) -> None:
        item = (self._frames_read - 1, frame)
        if not self.source.live:
            self._put_blocking(item)  # file sources: back-pressure, every frame is processed
            return
        while True:  # live sources: the newest frame wins, a stale queued one is dropped
            try:
                self._frames.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._frames.get_nowait()
                    self._frames_dropped += 1
                except queue.Empty:
                    pass

    def _put_blocking(self, item: object) -> None:
        while True:
            try:
                self._frames.put(item, timeout=0.2)
                return
            except queue.Full:
                if self._stop.is_set() and item is not _END:
                    return
                if self._stop.is_set():  # make room for the end marker: nobody needs queued frames now
                    with contextlib.suppress(queue.Empty):
                        self._frames.get_nowait()

    def _process_loop(self) -> None:
        scorer: AsyncScorer | SharedScorer | None = None
        try:
            while True:
                try:
                    item = self._frames.get(timeout=0.5)
                except queue.Empty:
                    if self._stop.is_set() and not self._reader.is_alive():
                        break
                    continue
                if item is _END or self._stop.is_set():
                    break
                index, frame = item  # type: ignore[misc]
                model = self._model
                assert model is not None
                if scorer is None or scorer.model is not model:  # first frame, or the model was swapped
                    if scorer is not None:
                        scorer.wait()  # the old model's frames are published first, in order
                        scorer.model.close()
                    scorer = scorer_for(model, self._on_result)
                sequence = self._submitted
                self._submitted += 1
                try:
                    scorer.submit(frame.image, (sequence, index, frame))
                    self._frame_errors = 0
                except HostGone as error:
                    self._deliver(sequence, None)
                    self._reopen_model(scorer, [error])
                    scorer = None
                    continue
                except Exception as error:
                    self._deliver(sequence, None)
                    self._frame_errors += 1
                    log.warning("frame %d: inference failed: %s", index, error)
                    if self._frame_errors >= MAX_CONSECUTIVE_FRAME_ERRORS:
                        raise
                errors = scorer.take_errors()
                for error in errors:
                    if not isinstance(error, HostGone):
                        raise error
                if errors:
                    self._reopen_model(scorer, errors)
                    scorer = None
        except Exception as error:
            log.exception("processor crashed")
            self._failure.set(f"inference error: {type(error).__name__}: {error}")
        finally:
            if scorer is not None:
                scorer.wait()
                if scorer.model is not self._model:  # a swap not picked up yet: _finish closes the new one
                    scorer.model.close()
            self._finish()  # no-op when stop() is already finishing

    def _reopen_model(self, scorer: AsyncScorer | SharedScorer, errors: list[BaseException]) -> None:
        """The model host died under this line: skip the frames it held, open the model again (a new host,
        started by whichever line comes first), or, after MAX_HOST_LOSSES, compile it here."""
        errors = errors + scorer.take_errors()
        for error in errors:
            for sequence, _, _ in getattr(error, "lost", ()):
                self._deliver(sequence, None)
        scorer.model.close()
        if self._stop.is_set():  # stopping closed the connection: nothing to reopen
            return
        self._host_losses += 1
        host = self._model_host if self._host_losses <= MAX_HOST_LOSSES else None
        log.warning("pipeline %s: %s; reopening the model %s", self.pipeline_id, errors[0],
                    "through a new host" if host else "in this process")
        with self._model_lock:
            if self._model is scorer.model:  # not swapped meanwhile
                self._model = open_model(self._model_dir, self.device, self.performance_hint, host)
                self._model_loaded_at = datetime.now(UTC)

    def _on_result(self, userdata: object, prediction: Prediction) -> None:
        sequence, index, frame = userdata  # type: ignore[misc]
        self._deliver(sequence, (index, frame, prediction))

    def _deliver(self, sequence: int, result: tuple[int, SourceFrame, Prediction] | None) -> None:
        """Publish results in submission order although parallel requests may finish out of order."""
        with self._order_lock:
            self._ready[sequence] = result
            while self._published in self._ready:
                ready = self._ready.pop(self._published)
                self._published += 1
                if ready is not None:
                    self._publish(*ready)

    def _publish(self, index: int, frame: SourceFrame, prediction: Prediction) -> None:
        threshold = self._threshold
        anomalous = prediction.score >= threshold
        processed = AnnotatedFrame(
            frame.image, prediction.anomaly_map, index, frame.timestamp, prediction.score, anomalous
        )
        self.latest.publish(processed)
        latency_ms = (time.monotonic() - frame.monotonic) * 1000
        self.metrics.record_frame(prediction.inference_ms, latency_ms, anomalous, prediction.score)
        if self.collector:
            self.collector.offer(frame.image, prediction.score, threshold, frame.timestamp, index)
        if anomalous and self.sinks:
            event = AnomalyEvent(self.pipeline_id, self.active_pipeline_id, self.source_info, threshold, processed)
            for worker in self.sinks:
                worker.offer(event)

    # ---------------------------------------------------------------- control

    def update_config(
        self, threshold: float | None = None, fps: float | None | _Keep = KEEP, model_dir: Path | None = None,
        collection: DataCollection | None = None,
    ) -> None:
        """Apply new settings to the running pipeline; arguments left out keep their value.

        Threshold, fps and data collection apply to the next frame (``fps=None``: no pacing). A new model is
        loaded and compiled on the calling thread while frames keep flowing through the old
        one, then swapped in; if it fails to load, ModelLoadError is raised and the old model
        stays.
        """
        validate_settings(threshold, None if isinstance(fps, _Keep) else fps)
        if model_dir is not None:
            with self._model_lock:
                model = open_model(Path(model_dir), self.device, self.performance_hint, self._model_host)
                replaced, self._model, self._model_dir = self._model, model, Path(model_dir)
                self._model_loaded_at = datetime.now(UTC)
            if replaced is not None and not self._processor.is_alive():
                replaced.close()  # no scorer will close it (the processor closes the one it scored with)
            log.info("pipeline %s: model swapped to %s", self.pipeline_id, model.xml_path)
        if threshold is not None:
            self._threshold = threshold
        if not isinstance(fps, _Keep):
            self._fps = fps
        if collection is not None and self.collector:
            self.collector.update(collection)

    def capture(self) -> Capture:
        """The newest frame, annotated and raw, as PNGs with its score; NoFrameYet before the first frame."""
        frame, _ = self.latest.get()
        if frame is None:
            raise NoFrameYet("no frame has been processed yet")
        return Capture(frame.encode("png"), frame.anomaly_score, frame.is_anomalous, frame.frame_index, frame.timestamp,
                       encode_image(frame.source_image, "png"))

    def status(self) -> dict[str, Any]:
        with self._state_lock:
            state, message = self._state, self._message
        model = self._model
        sink_status = [worker.status() for worker in self.sinks]
        metrics = self.metrics.snapshot(sink_errors=sum(worker.errors for worker in self.sinks))
        metrics["frames_dropped"] = self._frames_dropped + int(self.source.status().get("frames_dropped", 0))
        metrics.update(self.collector.counts() if self.collector else {"collected": 0, "collection_errors": 0})
        return {
            "state": state,
            "message": message,
            "pipeline_id": self.pipeline_id,
            "active_pipeline_id": self.active_pipeline_id,
            "started_at": iso_utc(self._started_at) if self._started_at else None,
            "config": {"threshold": self._threshold, "fps": self._fps,
                       "data_collection": self.collector.config.model_dump(mode="json") if self.collector else None},
            "model": {
                "path": str(model.xml_path) if model else None,
                "input_size": [model.input_height, model.input_width] if model else None,
                "loaded_at": iso_utc(self._model_loaded_at) if self._model_loaded_at else None,
            },
            "source": {**self.source_info.to_dict(), **self.source.status()},
            "sinks": sink_status,
            "metrics": metrics,
        }
