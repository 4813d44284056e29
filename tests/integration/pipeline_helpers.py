"""Real parts for the pipeline runtime tests: a tiny trained model, part frames and videos, loopback servers.

The fixtures that wrap these live in ``pipeline_fixtures.py`` (a pytest plugin). The benchmark in
``benchmarks/pipeline.py`` reuses the model and video helpers, so this module stays light to import.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from tests.network import free_port, port_open

REPO_ROOT = Path(__file__).resolve().parents[2]


FRAME_SIZE = (320, 240)  # width, height of the test video frames

_TRAIN_SCRIPT = """
import shutil, sys
from pathlib import Path
from lightning.pytorch import seed_everything
from anomalib.data import Folder
from anomalib.deploy import ExportType
from anomalib.engine import Engine
from anomalib.models import Padim

images, out = Path(sys.argv[1]), Path(sys.argv[2])
data = out / "data"
for sub, pattern, count in (("good", "MT_Free/Imgs/*.jpg", 16), ("bad", "MT_Crack/Imgs/*.jpg", 4)):
    (data / sub).mkdir(parents=True)
    for path in sorted(images.glob(pattern))[:count]:
        shutil.copy(path, data / sub)
seed_everything(7, verbose=False)
datamodule = Folder(name="t", root=data, normal_dir="good", abnormal_dir="bad",
                    train_batch_size=8, eval_batch_size=8, num_workers=0)
# Random backbone weights (offline): enough to tell the synthetic parts' drawn defects from good parts.
model = Padim(backbone="resnet18", pre_trained=False, layers=["layer1", "layer2", "layer3"])
engine = Engine(default_root_dir=out / "run", max_epochs=1, accelerator="cpu", devices=1, logger=False,
                enable_progress_bar=False, enable_model_summary=False)
engine.fit(model=model, datamodule=datamodule)
engine.export(model=model, export_type=ExportType.OPENVINO, export_root=out / "export", input_size=(256, 256))
"""


def tiny_padim_key(data: str) -> str:
    """Changes with the training data (``data`` names it), the recipe or the libraries that shape the export."""
    from importlib.metadata import version

    recipe = f"{data}{_TRAIN_SCRIPT}{version('anomalib')}{version('openvino')}{version('torch')}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def synthetic_parts_key() -> str:
    """The synthetic parts' generator, as a ``tiny_padim_key`` data name: a new drawing retrains the model."""
    from tests import synthetic_parts

    return "synthetic-" + hashlib.sha256(Path(synthetic_parts.__file__).read_bytes()).hexdigest()[:16]


def train_tiny_padim(images_dir: Path, out_dir: Path) -> Path:
    """Train PaDiM (random resnet18) on 16 MT_Free images of an MTD-layout folder, export OpenVINO; returns its dir.

    Work happens in a scratch folder and only a finished export is moved to ``out_dir/export``,
    so an interrupted run never leaves a half-written model behind for the next one.
    """
    export_dir = out_dir / "export"
    if not list(export_dir.rglob("model.xml")):
        scratch = out_dir / "scratch"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        result = subprocess.run(
            [sys.executable, "-c", _TRAIN_SCRIPT, str(images_dir), str(scratch)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"training the test model failed:\n{result.stderr[-4000:]}")
        shutil.rmtree(export_dir, ignore_errors=True)
        (scratch / "export").rename(export_dir)
        shutil.rmtree(scratch, ignore_errors=True)
    return export_dir


def class_images(images_dir: Path, cls: str, count: int, start: int = 0) -> list[Path]:
    """Images ``start`` .. ``start + count`` (by name) of one class folder (``MT_Free``, ``MT_Crack``...)."""
    paths = sorted((images_dir / cls / "Imgs").glob("*.jpg"))[start : start + count]
    assert len(paths) == count, f"not enough {cls} images in {images_dir}"
    return paths


def frames_from(paths: list[Path], size: tuple[int, int] = FRAME_SIZE) -> list[np.ndarray]:
    return [cv2.resize(cv2.imread(str(path)), size) for path in paths]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """An MJPG AVI (OpenCV can always write and read it) of same-sized BGR frames."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG video"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


# ------------------------------------------------------------------ MJPEG camera on loopback


class MjpegCamera:
    """An HTTP MJPEG camera (multipart/x-mixed-replace) on 127.0.0.1 that can be unplugged and replugged."""

    def __init__(self, frames: list[np.ndarray], fps: float = 20.0) -> None:
        self.jpegs = [cv2.imencode(".jpg", frame)[1].tobytes() for frame in frames]
        self.interval = 1.0 / fps
        self.port = free_port()
        self.online = threading.Event()
        self.connections = 0
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index = 0
                try:
                    while camera.online.is_set():
                        jpeg = camera.jpegs[index % len(camera.jpegs)]
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                            + jpeg
                            + b"\r\n"
                        )
                        index += 1
                        time.sleep(camera.interval)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def start(self) -> None:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), self._handler(), bind_and_activate=False)
        server.allow_reuse_address = True
        server.daemon_threads = True
        server.server_bind()
        server.server_activate()
        self.online.set()
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self) -> None:
        """Unplug: end open streams and stop listening (the port refuses connections)."""
        self.online.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# ------------------------------------------------------------------ webhook receiver on loopback


class WebhookReceiver:
    """Records every request; answers the status codes queued in ``responses`` first, then 200."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        """`port` 0 picks a free one; a closed receiver can be started again on its old `port`. `host`: the
        address to listen on (the multi-host test's server host)."""
        self.requests: list[dict] = []
        self.responses: list[int] = []
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.received = threading.Condition(self.lock)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay_s)
                with receiver.lock:
                    status = receiver.responses.pop(0) if receiver.responses else 200
                    receiver.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "status": status,
                        }
                    )
                    receiver.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_PATCH = _handle  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}/hooks/anomaly"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def successful(self) -> list[dict]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if r["status"] < 300]

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        """Wait until ``count`` requests were answered 2xx; returns their JSON bodies."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while sum(r["status"] < 300 for r in self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.received.wait(remaining)
        return self.successful()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ------------------------------------------------------------------ MQTT broker on loopback


class MosquittoProcess:
    """A private mosquitto on a free loopback port (so tests can stop and restart it)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("mosquitto") or "mosquitto", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


class AmqttBroker:
    """The pure-Python amqtt broker on its own thread and loop (amqtt 0.12 needs ``loop=``)."""

    def __init__(self) -> None:
        import asyncio

        from amqtt.broker import Broker

        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        self._broker = Broker(config, loop=self._loop)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._broker.start(), self._loop).result(15)

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class MqttListener:
    """Subscribes to a topic on the loopback broker and collects payloads."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"listener-{os.getpid()}-{port}")
        self._client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "MQTT listener could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append({"topic": message.topic, "qos": message.qos, **json.loads(message.payload)})
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def video_runtime(model_dir: Path, video: Path, fps: float = 15):  # -> PipelineRuntime (imported late, as above)
    """A runtime on a looping test video with no sinks: the subject of the live-view tests."""
    from pipelines.runtime import PipelineRuntime

    return PipelineRuntime.from_config(
        pipeline_id="pipe-1",
        active_pipeline_id="run-1",
        source_type="video_file",
        source_name="Line 3",
        source_config={"path": str(video)},
        sinks=[],
        model_dir=model_dir,
        config={"threshold": 0.5, "fps": fps},
    )
