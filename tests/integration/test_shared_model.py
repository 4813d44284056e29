"""Lines on one worker share one compiled model through the worker's model host (pipelines/model_host.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infra.openvino_model import AnomalyModel, ModelLoadError, Prediction
from pipelines.model_host import receive, send
from pipelines.runtime import PipelineRuntime
from pipelines.shared_model import SharedModel, connect, open_model
from tests.integration.pipeline_helpers import class_images, frames_from

pytestmark = pytest.mark.timeout(300)

HINT = "THROUGHPUT"


def host_stats(path: Path) -> dict[str, Any]:
    """What the host holds (asked over a connection of its own, which loads nothing)."""
    with connect(path) as sock:  # never starts one
        send(sock, threading.Lock(), {"op": "stats"})
        reply = receive(sock)
    assert reply is not None
    return reply[0]


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    """Poll until `condition()` holds (bounded, not a speed assertion)."""
    event = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError("condition not reached")


@pytest.fixture
def host_socket(tmp_path: Path) -> Iterator[Path]:
    """The socket path a worker would use; the host the test started is ended afterwards."""
    path = tmp_path / "run" / "model-host.sock"
    yield path
    try:
        pid = host_stats(path)["pid"]
    except OSError:  # none listens (it left, or the test never started one)
        pid = None
    if pid:
        os.kill(pid, signal.SIGTERM)


def _listening(path: Path) -> bool:
    try:
        connect(path).close()
    except OSError:
        return False
    return True


def _host_pid(path: Path) -> int | None:
    try:
        return host_stats(path)["pid"]
    except OSError:
        return None


def score_all(model: SharedModel, frames: list[np.ndarray]) -> list[Prediction]:
    results: dict[int, Prediction] = {}
    scorer = model.scorer(lambda index, prediction: results.__setitem__(index, prediction))
    for index, frame in enumerate(frames):
        scorer.submit(frame, index)
    scorer.wait()
    assert scorer.take_errors() == []
    return [results[index] for index in range(len(frames))]


def test_two_lines_on_one_model_share_one_compiled_copy(model_dir: Path, part_images: Path,
                                                        host_socket: Path) -> None:
    frames = frames_from(class_images(part_images, "MT_Free", 3) + class_images(part_images, "MT_Crack", 3),
                         (300, 200))
    first = open_model(model_dir, "CPU", HINT, host_socket)
    second = open_model(model_dir, "CPU", HINT, host_socket)
    assert isinstance(first, SharedModel) and isinstance(second, SharedModel)
    assert first.host_pid == second.host_pid != os.getpid()
    stats = host_stats(host_socket)
    assert [(model["device"], model["hint"], model["clients"]) for model in stats["models"]] == [("CPU", HINT, 2)]

    local = AnomalyModel(model_dir, "CPU", HINT)
    expected = [local.infer(frame) for frame in frames]
    for shared in (first, second):
        got = score_all(shared, frames)
        assert [p.score for p in got] == [p.score for p in expected]  # the same compiled graph, bit for bit
        for mine, theirs in zip(got, expected, strict=True):
            assert np.array_equal(mine.anomaly_map, theirs.anomaly_map)

    first.close()
    wait_for(lambda: [m["clients"] for m in host_stats(host_socket)["models"]] == [1])
    second.close()
    wait_for(lambda: host_stats(host_socket)["models"] == [])  # the last line gone: the model is dropped


def _looping_line(model_dir: Path, part_video: Path, host_socket: Path) -> PipelineRuntime:
    """A line on a looping video whose model opens through the host at `host_socket`."""
    return PipelineRuntime.from_config(
        pipeline_id="p", active_pipeline_id="a", source_type="video_file", source_name="cam",
        source_config={"path": str(part_video), "loop": True}, sinks=[], model_dir=model_dir,
        config={"threshold": 0.5, "fps": 25}, model_host=host_socket)


def test_a_live_swap_moves_the_line_to_the_new_model_in_the_host(model_dir: Path, part_video: Path,
                                                                  host_socket: Path, tmp_path: Path) -> None:
    promoted = shutil.copytree(model_dir, tmp_path / "promoted")  # another model id: another folder
    runtime = _looping_line(model_dir, part_video, host_socket)
    runtime.start()
    try:
        wait_for(lambda: runtime.metrics.frames_processed >= 3)
        runtime.update_config(model_dir=promoted, threshold=0.7)
        xml = str(next(promoted.rglob("model.xml")).resolve())
        wait_for(lambda: [(m["xml"], m["clients"]) for m in host_stats(host_socket)["models"]] == [(xml, 1)])
        frames = runtime.metrics.frames_processed
        wait_for(lambda: runtime.metrics.frames_processed >= frames + 3)  # still running, on the new model
        assert runtime.state == "running"
        assert runtime.status()["config"]["threshold"] == 0.7
    finally:
        runtime.stop()
    wait_for(lambda: host_stats(host_socket)["models"] == [])


def test_without_a_host_the_line_compiles_its_own(model_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the socket's folder cannot be made
    assert isinstance(open_model(model_dir, "CPU", HINT, blocker / "run" / "model-host.sock"), AnomalyModel)
    too_long = tmp_path / ("x" * 120) / "model-host.sock"
    assert isinstance(open_model(model_dir, "CPU", HINT, too_long), AnomalyModel)
    assert isinstance(open_model(model_dir, "CPU", HINT, None), AnomalyModel)


def test_a_stale_socket_is_replaced_and_an_idle_host_leaves(host_socket: Path) -> None:
    host_socket.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(host_socket))  # what a killed host leaves behind: a socket file nobody listens on
    stale.close()
    host = subprocess.Popen([sys.executable, "-m", "pipelines.model_host", "--socket", str(host_socket),
                             "--idle", "1"], cwd=Path(__file__).resolve().parents[2])
    try:
        wait_for(lambda: host.poll() is not None or _listening(host_socket))
        assert host_stats(host_socket)["pid"] == host.pid
        assert host.wait(timeout=60) == 0  # no line connected: it left by itself...
        assert not host_socket.exists()  # ...and removed its socket
    finally:
        if host.poll() is None:
            host.kill()


def test_an_unusable_model_is_refused_by_the_host_not_retried_locally(tmp_path: Path, host_socket: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.xml").write_text("<net>not an IR</net>")
    (broken / "model.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="cannot read"):
        open_model(broken, "CPU", HINT, host_socket)
    assert host_stats(host_socket)["models"] == []  # and the host is still there to answer


def test_a_line_outlives_its_model_host(model_dir: Path, part_video: Path, host_socket: Path) -> None:
    """The host is killed under a running line: the line skips the frames it held and reopens the model
    through a new host, without stopping."""
    runtime = _looping_line(model_dir, part_video, host_socket)
    runtime.start()
    try:
        wait_for(lambda: runtime.metrics.frames_processed >= 3)
        first_host = host_stats(host_socket)["pid"]
        os.kill(first_host, signal.SIGKILL)
        wait_for(lambda: _host_pid(host_socket) not in (None, first_host))  # the dying one may still accept
        wait_for(lambda: [m["clients"] for m in host_stats(host_socket)["models"]] == [1])
        frames = runtime.metrics.frames_processed
        wait_for(lambda: runtime.metrics.frames_processed >= frames + 3)
        assert runtime.state == "running"
    finally:
        runtime.stop()
