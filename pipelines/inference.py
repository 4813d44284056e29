"""Asynchronous OpenVINO scoring for the live runtime (several requests in flight).

The IR loading and its pre-processing live in `infra/openvino_model.py`, shared with the
retraining flow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import openvino as ov

from infra.openvino_model import AnomalyModel, Prediction

log = logging.getLogger(__name__)


ResultCallback = Callable[[object, Prediction], None]


class AsyncScorer:
    """Keeps the model's optimal number of inference requests busy (OpenVINO AsyncInferQueue).

    With the THROUGHPUT hint the CPU plugin runs several streams in parallel, which on a small
    machine uses the cores better than one request at a time. ``submit`` pre-processes on the
    caller's thread and blocks only while every request is busy; ``on_result(userdata,
    prediction)`` runs on an OpenVINO thread as each request completes (possibly out of order).
    """

    def __init__(self, model: AnomalyModel, on_result: ResultCallback) -> None:
        self.model = model
        self._queue = ov.AsyncInferQueue(model.compiled)
        self.requests = len(self._queue)
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        # The callback must not reference this object or the queue: the queue keeps it alive from C++,
        # where Python's cycle collector cannot see, and each queue holds hundreds of MB of buffers.
        errors, lock = self._errors, self._lock

        def completed(request: ov.InferRequest, payload: tuple[object, float]) -> None:
            userdata, preprocess_ms = payload
            try:
                score, anomaly_map = model.read_outputs(request)
                on_result(userdata, Prediction(score, anomaly_map, preprocess_ms + request.latency))
            except BaseException as error:  # never let an exception escape into OpenVINO's thread
                log.exception("handling an inference result failed")
                with lock:
                    errors.append(error)

        self._queue.set_callback(completed)

    def submit(self, frame_bgr: np.ndarray, userdata: object) -> None:
        started = time.perf_counter()
        tensor = self.model.preprocess(frame_bgr)
        preprocess_ms = (time.perf_counter() - started) * 1000
        self._queue.start_async({0: tensor}, (userdata, preprocess_ms))

    def take_errors(self) -> list[BaseException]:
        """Errors raised by result handling since the last call."""
        with self._lock:
            errors, self._errors = self._errors, []
            return errors

    def wait(self) -> None:
        """Block until every submitted frame has been handed to ``on_result``."""
        self._queue.wait_all()
