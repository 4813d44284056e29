"""A line's side of the model host (``pipelines/model_host.py``): open a model there, score frames through it.

``open_model`` is what the runtime calls to load (and, on a live swap, reload) its model: with a host
socket it connects (starting the worker's host if none runs) and returns a :class:`SharedModel`; if no
host can be reached or started it logs why and compiles in the line's own process, as before. An IR the
host cannot load raises ModelLoadError either way, as a local compile would.

A :class:`SharedModel` has the surface the runtime uses of :class:`AnomalyModel` (``xml_path``, input
size, ``preprocess``, ``close``); :class:`SharedScorer` has :class:`AsyncScorer`'s. Pre-processing (the
resize) stays on the line; the host receives the model's ``[1, H, W, 3]`` uint8 input.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np

from infra.openvino_model import AnomalyModel, ModelLoadError, Prediction, find_model_xml, model_input
from pipelines.inference import AsyncScorer, ResultCallback
from pipelines.model_host import lock_path, receive, send

log = logging.getLogger(__name__)

HOST_START_TIMEOUT_S = 30.0
# Tries to open a model through the host when a connection is dropped while loading (a host dying then).
OPEN_ATTEMPTS = 3
# sockaddr_un holds 108 bytes with its terminator: a longer path cannot be bound.
MAX_SOCKET_PATH = 107


class HostUnavailable(RuntimeError):
    """No model host answers on the socket and none could be started; ``transient`` when one accepted the
    connection and then dropped it (a host dying right then), which a second try gets past."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class HostGone(ConnectionError):
    """The host closed a line's connection while it ran (it died); ``lost`` holds the frames it had in flight."""

    def __init__(self, message: str, lost: list[object] | None = None) -> None:
        super().__init__(message)
        self.lost = lost or []


def connect(path: Path) -> socket.socket:
    """A connection to a host that listens on `path` now (OSError if none does)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def connect_host(path: Path, timeout_s: float = HOST_START_TIMEOUT_S) -> socket.socket:
    """A connection to the worker's model host, started (detached, in its own session) if none listens."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise HostUnavailable(f"socket path {path} is longer than a Unix socket allows")
    with contextlib.suppress(OSError):
        return connect(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(lock_path(path), "a")  # noqa: SIM115 - held across the start below
    except OSError as error:
        raise HostUnavailable(f"cannot prepare {path.parent}: {error}") from error
    with lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # one line starts the host; the others wait and connect
        with contextlib.suppress(OSError):
            return connect(path)
        log_path = path.with_name("model-host.log")
        with open(log_path, "ab") as output:
            host = subprocess.Popen(
                [sys.executable, "-m", "pipelines.model_host", "--socket", str(path)],
                stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True,
                cwd=Path(__file__).resolve().parents[1])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                return connect(path)
            if host.poll() is not None:
                raise HostUnavailable(f"the model host exited with {host.returncode} (see {log_path})")
            time.sleep(0.05)
        host.kill()
        raise HostUnavailable(f"the model host did not listen on {path} within {timeout_s:.0f} s")


def _disconnect(sock: socket.socket) -> None:
    """Shut down first: a plain close would leave a reader thread blocked on the socket, and the host waiting."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class SharedModel:
    """A model compiled once in the worker's model host; this line's connection to it."""

    def __init__(self, socket_path: Path, model_dir: Path, device: str, performance_hint: str) -> None:
        self.xml_path = find_model_xml(Path(model_dir))  # the same error as a local load for a bad folder
        self.device = device
        sock = connect_host(socket_path)
        self._sock, self._send_lock = sock, threading.Lock()
        self._finalizer = weakref.finalize(self, _disconnect, sock)  # one dropped without close() still disconnects
        try:
            send(sock, self._send_lock, {"op": "load", "model_dir": str(model_dir), "device": device,
                                         "hint": performance_hint})
            reply = receive(sock)
        except OSError as error:
            self.close()
            raise HostUnavailable(f"the model host dropped the connection: {error}", transient=True) from error
        if reply is None:
            self.close()
            raise HostUnavailable("the model host closed the connection while loading", transient=True)
        header = reply[0]
        if "error" in header:
            self.close()
            raise ModelLoadError(header["error"])
        self.input_height, self.input_width = header["input"]
        self.has_map: bool = header["map"]
        self.requests: int = header["requests"]
        self.host_pid: int = header["pid"]
        log.info("model %s shared through the model host (pid %d)", self.xml_path, self.host_pid)

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        return model_input(frame_bgr, self.input_height, self.input_width)

    def scorer(self, on_result: ResultCallback) -> SharedScorer:
        return SharedScorer(self, on_result)

    def close(self) -> None:
        """Disconnect: the host drops the compiled model when no other line uses it."""
        self._finalizer()


class SharedScorer:
    """Keeps up to the host's request count of this line's frames in flight; results arrive on a reader thread."""

    def __init__(self, model: SharedModel, on_result: ResultCallback) -> None:
        self.model = model
        self.requests = model.requests
        self._sock, self._send_lock = model._sock, model._send_lock
        self._slots = threading.Semaphore(model.requests)
        self._pending: dict[int, tuple[object, float]] = {}
        self._errors: list[BaseException] = []
        self._changed = threading.Condition()
        self._sequence = itertools.count()
        self._broken: str | None = None
        # The runtime closes the model when it swaps it out or stops, which ends this reader.
        shape = (model.input_height, model.input_width)
        threading.Thread(target=self._read, args=(self._sock, shape, on_result), name="shared-model-results",
                         daemon=True).start()

    def _read(self, sock: socket.socket, shape: tuple[int, int], on_result: ResultCallback) -> None:
        try:
            while (message := receive(sock)) is not None:
                header, payload = message
                with self._changed:
                    userdata, preprocess_ms = self._pending.pop(header["seq"])
                self._slots.release()
                try:
                    if "error" in header:
                        raise RuntimeError(f"inference failed in the model host: {header['error']}")
                    anomaly_map = np.frombuffer(payload, dtype=np.float32).reshape(shape) if payload else None
                    on_result(userdata, Prediction(header["score"], anomaly_map, preprocess_ms + header["ms"]))
                except BaseException as error:  # noqa: BLE001 - reported through take_errors, as AsyncScorer does
                    log.exception("handling an inference result failed")
                    with self._changed:
                        self._errors.append(error)
                with self._changed:
                    self._changed.notify_all()
        except OSError:
            pass
        self._fail("the model host closed the connection")

    def _fail(self, reason: str) -> None:
        with self._changed:
            if self._broken is None:
                self._broken = reason
                lost = [userdata for userdata, _ in self._pending.values()]
                self._errors.append(HostGone(f"{reason} with {len(lost)} frame(s) in flight", lost))
            self._pending.clear()
            self._changed.notify_all()
        for _ in range(self.requests):
            self._slots.release()  # nobody waits for a slot that will never free

    def submit(self, frame_bgr: np.ndarray, userdata: object) -> None:
        started = time.perf_counter()
        tensor = self.model.preprocess(frame_bgr)
        preprocess_ms = (time.perf_counter() - started) * 1000
        self._slots.acquire()
        with self._changed:
            if self._broken is not None:
                raise HostGone(self._broken)
            sequence = next(self._sequence)
            self._pending[sequence] = (userdata, preprocess_ms)
        try:
            send(self._sock, self._send_lock, {"op": "infer", "seq": sequence}, tensor.tobytes())
        except OSError as error:
            with self._changed:
                self._pending.pop(sequence, None)  # the caller accounts for this frame
            self._fail(f"the model host is gone ({error})")
            raise HostGone(f"the model host is gone ({error})") from error

    def take_errors(self) -> list[BaseException]:
        with self._changed:
            errors, self._errors = self._errors, []
            return errors

    def wait(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: not self._pending or self._broken is not None)


def open_model(model_dir: Path, device: str, performance_hint: str,
               host_socket: Path | None) -> AnomalyModel | SharedModel:
    """The model through the worker's host when one is configured and reachable, else compiled here."""
    for attempt in range(OPEN_ATTEMPTS if host_socket is not None else 0):
        try:
            return SharedModel(host_socket, model_dir, device, performance_hint)  # type: ignore[arg-type]
        except HostUnavailable as error:
            if error.transient and attempt + 1 < OPEN_ATTEMPTS:
                time.sleep(0.2 * (attempt + 1))  # a dying host's socket: the next try starts a new one
                continue
            log.warning("model host unavailable (%s): compiling %s in this process", error, model_dir)
            break
    return AnomalyModel(model_dir, device, performance_hint)


def scorer_for(model: AnomalyModel | SharedModel, on_result: ResultCallback) -> AsyncScorer | SharedScorer:
    return model.scorer(on_result) if isinstance(model, SharedModel) else AsyncScorer(model, on_result)
