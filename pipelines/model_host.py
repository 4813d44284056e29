"""One compiled model per worker, shared by every line that runs it: the model host process.

Why a process: the CPU plugin does not run an IR's weights in place. At compile time it derives its own
copies (for PaDiM, the 156 MiB inverse covariance transposed and converted to bf16) in private, anonymous
memory, and does so again when it imports a cached blob (``CACHE_DIR``), so neither the model cache nor
mmap-reading the IR lets two processes share them (measured: ``benchmarks/shared_model.py``). Each line is
its own process (a flow run), so lines share a compiled model only by asking one process that holds it.

The host listens on a Unix socket in the worker's data dir. Each connection loads one model (by its IR
folder, device and performance hint) and then streams frames; connections that load the same model share
one compiled model and one ``AsyncInferQueue`` (so the plugin's streams serve every line, as a single
line's would). A model is dropped when its last connection closes; the host exits once it has had no
connection for ``idle_s``. Lines start it on demand (``pipelines/shared_model.py``) and fall back to
compiling in their own process when it cannot be reached.

Wire format, both ways: ``!II`` (header length, payload length), a JSON header, the payload.

    line → host   {"op": "load", "model_dir": ..., "device": ..., "hint": ...}
                  {"op": "infer", "seq": n} + the pre-processed frame ([1, H, W, 3] uint8)
                  {"op": "stats"}
    host → line   {"op": "load", "xml": ..., "input": [H, W], "map": bool, "requests": n, "pid": p} or {"error": ...}
                  {"seq": n, "score": s, "ms": inference ms} + the anomaly map ([H, W] float32)
                  or {"seq": n, "error": ...}
                  {"op": "stats", "pid": p, "models": [{"xml": ..., "device": ..., "hint": ..., "clients": n}]}

    python -m pipelines.model_host --socket DATA_DIR/run/model-host.sock [--idle 30]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from infra.openvino_model import AnomalyModel, ModelLoadError, find_model_xml

log = logging.getLogger(__name__)

_FRAME = struct.Struct("!II")
IDLE_S = 30.0


def send(sock: socket.socket, lock: threading.Lock, header: dict[str, Any], payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    with lock:
        sock.sendall(_FRAME.pack(len(data), len(payload)) + data)
        if payload:
            sock.sendall(payload)


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return buffer


def receive(sock: socket.socket) -> tuple[dict[str, Any], bytearray] | None:
    """The next message, or None when the other side closed the connection."""
    sizes = _read_exactly(sock, _FRAME.size)
    if sizes is None:
        return None
    header_size, payload_size = _FRAME.unpack(sizes)
    header = _read_exactly(sock, header_size)
    payload = _read_exactly(sock, payload_size) if payload_size else bytearray()
    if header is None or payload is None:
        return None
    return json.loads(header), payload


def lock_path(socket_path: Path) -> Path:
    """Held while a host is started or decides to exit, so a line never connects to one that is leaving."""
    return socket_path.with_name(socket_path.name + ".lock")


class _Client:
    """One connection: replies may come from OpenVINO's threads, so sends are serialised."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def reply(self, header: dict[str, Any], payload: bytes = b"") -> None:
        with contextlib.suppress(OSError):  # the line went away; its frames no longer matter
            send(self.sock, self.lock, header, payload)


class _SharedModel:
    """A compiled model and the request queue every connection that loaded it submits to."""

    def __init__(self, model: AnomalyModel) -> None:
        self.model = model
        self.queue = ov.AsyncInferQueue(model.compiled)
        self.clients = 0
        # start_async is not thread-safe (two callers can pick the same idle request): one submitter at a time.
        # It blocks while every request is busy, so lines queue here for the next free one.
        self.submit_lock = threading.Lock()

        # The callback must not reference the queue (it keeps the callback alive from C++).
        def completed(request: ov.InferRequest, userdata: tuple[_Client, int]) -> None:
            client, sequence = userdata
            try:
                score, anomaly_map = model.read_outputs(request)
            except BaseException as error:  # noqa: BLE001 - never let an exception escape into OpenVINO's thread
                client.reply({"seq": sequence, "error": f"{type(error).__name__}: {error}"})
                return
            payload = anomaly_map.tobytes() if anomaly_map is not None else b""
            client.reply({"seq": sequence, "score": score, "ms": request.latency}, payload)

        self.queue.set_callback(completed)


class ModelHost:
    def __init__(self, socket_path: Path, idle_s: float = IDLE_S) -> None:
        self.socket_path = socket_path
        self.idle_s = idle_s
        self._models: dict[tuple[str, str, str], _SharedModel] = {}
        self._lock = threading.Lock()  # the models and the connection count; held while compiling
        self._connections = 0
        self._idle_since = time.monotonic()
        self._bound = 0  # the inode of the socket file this host bound

    def _acquire(self, model_dir: str, device: str, hint: str) -> tuple[tuple[str, str, str], _SharedModel]:
        key = (str(find_model_xml(Path(model_dir)).resolve()), device, hint)
        with self._lock:
            shared = self._models.get(key)
            if shared is None:
                shared = self._models[key] = _SharedModel(AnomalyModel(Path(key[0]), device, hint))
                log.info("model host: compiled %s on %s (%s)", key[0], device, hint)
            shared.clients += 1
            return key, shared

    def _release(self, key: tuple[str, str, str], shared: _SharedModel) -> None:
        shared.queue.wait_all()  # this connection's frames still in flight
        with self._lock:
            shared.clients -= 1
            if shared.clients == 0 and self._models.get(key) is shared:
                del self._models[key]
                log.info("model host: dropped %s (no line runs it)", key[0])

    def _stats(self) -> dict[str, Any]:
        with self._lock:
            models = [{"xml": key[0], "device": key[1], "hint": key[2], "clients": shared.clients}
                      for key, shared in self._models.items()]
        return {"op": "stats", "pid": os.getpid(), "models": models}

    def _serve(self, sock: socket.socket) -> None:
        client = _Client(sock)
        loaded: tuple[tuple[str, str, str], _SharedModel] | None = None
        try:
            while (message := receive(sock)) is not None:
                header, payload = message
                op = header.get("op")
                if op == "infer" and loaded is not None:
                    model = loaded[1].model
                    frame = np.frombuffer(payload, dtype=np.uint8).reshape(1, model.input_height, model.input_width, 3)
                    try:
                        with loaded[1].submit_lock:
                            loaded[1].queue.start_async({0: frame}, (client, header["seq"]))
                    except Exception as error:  # noqa: BLE001 - a bad frame fails that frame, not the host
                        client.reply({"seq": header["seq"], "error": f"{type(error).__name__}: {error}"})
                elif op == "load" and loaded is None:
                    try:
                        loaded = self._acquire(header["model_dir"], header["device"], header["hint"])
                    except ModelLoadError as error:
                        client.reply({"op": "load", "error": str(error)})
                        continue
                    model = loaded[1].model
                    client.reply({"op": "load", "xml": str(model.xml_path),
                                  "input": [model.input_height, model.input_width], "map": model.has_map,
                                  "requests": len(loaded[1].queue), "pid": os.getpid()})
                elif op == "stats":
                    client.reply(self._stats())
                else:
                    client.reply({"error": f"unexpected {op!r}"})
                    break
        except (OSError, ValueError, KeyError) as error:
            log.warning("model host: dropping a connection: %s", error)
        finally:
            if loaded is not None:
                self._release(*loaded)
            sock.close()
            with self._lock:
                self._connections -= 1
                self._idle_since = time.monotonic()

    def _may_exit(self) -> bool:
        with self._lock:
            return self._connections == 0 and time.monotonic() - self._idle_since >= self.idle_s

    def run(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a host that died left it; whoever started us holds the lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is this user's only
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(old_umask)
        self._bound = self.socket_path.stat().st_ino  # to remove only our own socket when leaving
        listener.listen(64)
        listener.settimeout(1.0)
        log.info("model host %d listening on %s", os.getpid(), self.socket_path)
        with listener:
            while True:
                try:
                    sock, _ = listener.accept()
                except TimeoutError:
                    if self._may_exit() and self._leave():
                        return
                    continue
                sock.settimeout(None)
                with self._lock:
                    self._connections += 1
                threading.Thread(target=self._serve, args=(sock,), name="model-host-client", daemon=True).start()

    def _leave(self) -> bool:
        """Remove the socket under the start lock, unless a line is starting a host or connected meanwhile."""
        try:
            lock_file = open(lock_path(self.socket_path), "a")  # noqa: SIM115 - closed by the with below
        except OSError:  # the data dir is gone (a removed test or scratch dir): nothing left to serve
            return True
        with lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if not self._may_exit():
                return False
            with contextlib.suppress(FileNotFoundError):
                if self.socket_path.stat().st_ino == self._bound:  # not a newer host's
                    self.socket_path.unlink()
            log.info("model host %d: idle for %.0f s, exiting", os.getpid(), self.idle_s)
            return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--idle", type=float, default=IDLE_S, help="exit after this many seconds without a line")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ModelHost(args.socket, args.idle).run()


if __name__ == "__main__":
    main()
