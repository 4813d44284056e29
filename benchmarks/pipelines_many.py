"""Many lines at once: 1, 2 and 4 live pipelines on one machine, same IR, looping video.

Each line is its own process, as each active pipeline is its own flow run of the inference
worker, and runs the runtime the way the inference flow builds it (``PipelineRuntime.from_config``
with the flow's defaults: THROUGHPUT hint, no sinks), at the highest fps a pipeline config allows,
which is far above what the model gives here: every line is saturated.

The baseline is the raw compiled model behind an AsyncInferQueue (THROUGHPUT hint, one process,
one pre-processed frame): the machine's raw throughput for this IR. The machine is shared, so
raw and lines take turns in short slices, ``--rounds`` times: raw runs while every line process
is paused (SIGSTOP), then the lines run (SIGCONT) while raw waits, and so on, ending with raw.
Each lines slice is compared with the raw slices on either side of it (median of the per-slice
ratios), so a neighbour's load that comes and goes hits both sides alike. CPU time per frame
(every thread of the processes, user + system) is printed beside it: the share the lines would
reach on an idle machine, whatever the neighbours take.

Per line: fps, p95 latency read → published of the frames read inside the lines' turns (a
saturated line's latency includes its queue: requests in flight plus one frame waiting), and
memory at the end: RSS, and USS (what only that line holds; RSS also counts the IR file's pages,
which the page cache shares between lines).

    .venv/bin/python benchmarks/pipelines_many.py --lines 1 2 4 --rounds 4 --slice 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.pipeline import prepare, raw_async_fps  # noqa: E402
from benchmarks.support import percentile  # noqa: E402
from infra.openvino_model import _ov_core  # noqa: E402
from pipelines.metrics import MetricsTracker  # noqa: E402
from pipelines.runtime import PipelineRuntime  # noqa: E402

TARGET_SHARE = 0.90
MAX_FPS = 120.0  # a pipeline config's highest fps


class WindowMetrics(MetricsTracker):
    """The runtime's metrics, plus the latency of each frame read inside the open window (a frame read
    before a pause and published after it would count the pause)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: float | None = None
        self.window_latencies: list[float] = []

    def record_frame(self, inference_ms: float, latency_ms: float, anomalous: bool) -> None:
        super().record_frame(inference_ms, latency_ms, anomalous)
        opened = self.opened
        if opened is not None and time.monotonic() - latency_ms / 1000 >= opened:
            self.window_latencies.append(latency_ms)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def run_line(model_dir: Path, video: Path, warmup_s: float, ov_config: dict | None) -> None:
    """Child: one line. stdin: 'go' opens a window, 'mark' closes it (prints its figures), 'stop' ends."""
    metrics = WindowMetrics()
    if ov_config:  # a setting to compare: applies to every model this process compiles
        _ov_core().set_property("CPU", ov_config)
    runtime = PipelineRuntime.from_config(
        pipeline_id=f"line-{os.getpid()}", active_pipeline_id=f"line-{os.getpid()}", source_type="video_file",
        source_name="bench", source_config={"path": str(video)}, sinks=[], model_dir=model_dir,
        config={"threshold": 0.5, "fps": MAX_FPS}, metrics=metrics)
    runtime.start()
    time.sleep(warmup_s)
    print("ready", flush=True)
    process = psutil.Process()
    window: tuple[int, float, float] = (0, 0.0, 0.0)
    for command in sys.stdin:
        command = command.strip()
        if command == "go":
            window = (metrics.frames_processed, time.monotonic(), cpu_seconds(process))
            metrics.opened = window[1]
        elif command == "mark":
            metrics.opened = None
            frames, started, cpu = window
            count = metrics.frames_processed - frames
            print(json.dumps({"frames": count, "seconds": time.monotonic() - started,
                              "cpu_s": cpu_seconds(process) - cpu}), flush=True)
        elif command == "stop":
            break
    memory = process.memory_full_info()  # USS: pages only this line holds; RSS also counts the shared IR file
    state = runtime.state
    runtime.stop()
    latencies = metrics.window_latencies
    # Nearest rank over every frame of the turn (hundreds): a real p95, not the maximum.
    print(json.dumps({"state": state, "p95": percentile(latencies, 95) if latencies else float("nan"),
                      "latencies": len(latencies), "rss_mib": memory.rss / 2**20, "uss_mib": memory.uss / 2**20}),
          flush=True)


class Lines:
    """`count` line processes, paused and resumed together; their logs go to `logs_dir`."""

    def __init__(self, count: int, model_dir: Path, video: Path, warmup_s: float, logs_dir: Path,
                 ov_config: str | None) -> None:
        command = [sys.executable, "-X", "faulthandler", __file__, "--child", "--model-dir", str(model_dir),
                   "--video", str(video), "--warmup", str(warmup_s), *(["--ov-config", ov_config] if ov_config else [])]
        self.logs = [logs_dir / f"lines-{count}-{index}.log" for index in range(count)]
        self.children: list[subprocess.Popen] = []
        for log in self.logs:
            with log.open("w") as stderr:
                self.children.append(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                      stderr=stderr, text=True, cwd=REPO_ROOT))
        for index in range(count):
            if self._read(index) != "ready":
                raise self._failed(index, "did not start")

    def _read(self, index: int) -> str:
        return self.children[index].stdout.readline().strip()  # type: ignore[union-attr]

    def _failed(self, index: int, what: str) -> RuntimeError:
        child = self.children[index]
        time.sleep(0.5)
        return RuntimeError(f"line {index} {what} (exit {child.poll()}):\n{self.logs[index].read_text()[-3000:]}")

    def _send(self, command: str) -> None:
        for child in self.children:
            child.stdin.write(command + "\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]

    def pause(self) -> None:
        for child in self.children:
            os.kill(child.pid, signal.SIGSTOP)

    def window(self, seconds: float) -> list[dict]:
        """Resume, measure `seconds`, pause again; the figures of each line for that window."""
        for child in self.children:
            os.kill(child.pid, signal.SIGCONT)
        self._send("go")
        time.sleep(seconds)
        self._send("mark")
        results = []
        for index in range(len(self.children)):
            line = self._read(index)
            if not line:
                raise self._failed(index, "ended during a window")
            results.append(json.loads(line))
        self.pause()
        return results

    def stop(self) -> list[dict]:
        for child in self.children:
            os.kill(child.pid, signal.SIGCONT)
        self._send("stop")
        results = []
        for index, child in enumerate(self.children):
            out, _ = child.communicate(timeout=120)
            if not out.strip():
                raise self._failed(index, "failed on stop")
            result = json.loads(out.strip().splitlines()[-1])
            if child.returncode != 0:  # it stopped and reported, then its interpreter exit failed: say so
                result["exit"] = child.returncode
                print(f"  line {index} exited with {child.returncode} after stopping: "
                      f"{self.logs[index].read_text().strip().splitlines()[0]}", flush=True)
            results.append(result)
        return results

    def kill(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()


def measure(count: int, model_dir: Path, video: Path, frame, args: argparse.Namespace, logs_dir: Path) -> dict:
    """Raw and `count` lines taking turns: raw, lines, raw, ..., lines, raw."""
    lines = Lines(count, model_dir, video, args.warmup, logs_dir, args.ov_config)
    try:
        lines.pause()
        raws, windows, requests = [], [], 0
        for _ in range(args.rounds):
            fps, requests, cpu_ms = raw_async_fps(model_dir, frame, args.slice)
            raws.append((fps, cpu_ms))
            windows.append(lines.window(args.slice))
        fps, requests, cpu_ms = raw_async_fps(model_dir, frame, args.slice)
        raws.append((fps, cpu_ms))
        ends = lines.stop()
    finally:
        lines.kill()
    totals = [sum(line["frames"] / line["seconds"] for line in window) for window in windows]
    ratios = [total / ((raws[i][0] + raws[i + 1][0]) / 2) for i, total in enumerate(totals)]
    frames = [sum(window[i]["frames"] for window in windows) for i in range(count)]
    seconds = [sum(window[i]["seconds"] for window in windows) for i in range(count)]
    cpu = sum(line["cpu_s"] for window in windows for line in window)
    return {
        "count": count, "requests": requests,
        "raw_fps": statistics.median(fps for fps, _ in raws),
        "raw_cpu_ms": statistics.median(cpu_ms for _, cpu_ms in raws),
        "total_fps": statistics.median(totals),
        "share": statistics.median(ratios), "share_min": min(ratios), "share_max": max(ratios),
        "line_fps": [frames[i] / seconds[i] for i in range(count)],
        "line_cpu_ms": cpu * 1000 / max(sum(frames), 1),
        "p95": [end["p95"] for end in ends], "rss": [end["rss_mib"] for end in ends],
        "uss": [end["uss_mib"] for end in ends], "exits": [end.get("exit", 0) for end in ends],
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1, 2, 4], help="line counts (default 1 2 4)")
    parser.add_argument("--rounds", type=int, default=4, help="raw/lines turns per count (default 4)")
    parser.add_argument("--slice", type=float, default=5, help="seconds of each turn (default 5)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds each line runs before the turns (default 5)")
    parser.add_argument("--model-dir", type=Path, default=None, help="anomalib OpenVINO export (default: tiny PaDiM)")
    parser.add_argument("--mtd-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mtd")
    parser.add_argument("--frame-size", default="640x480", help="video frame size WxH (default 640x480)")
    parser.add_argument("--frames", type=int, default=48, help="distinct frames in the looping video (default 48)")
    parser.add_argument("--ov-config", default=None,
                        help='OpenVINO CPU properties for the lines, to compare settings (JSON, e.g. '
                             '\'{"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 1}\'; default: the product\'s own)')
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_line(args.model_dir, args.video, args.warmup, json.loads(args.ov_config) if args.ov_config else None)
        return

    width, height = (int(part) for part in args.frame_size.lower().split("x"))
    size = (width, height)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model_dir, video, frame = prepare(args.model_dir, args.mtd_dir, Path(scratch), args.frames, size)
        for count in args.lines:
            row = measure(count, model_dir, video, frame, args, Path(scratch))
            rows.append(row)
            print(f"  {count} line(s): raw {row['raw_fps']:.1f} fps | lines {row['total_fps']:.1f} fps "
                  f"= {row['share']:.0%} of raw (slices {row['share_min']:.0%}..{row['share_max']:.0%}); "
                  f"load {row['load']:.1f}", flush=True)

    print(f"\n{args.rounds} turns of {args.slice:g} s per count (raw and lines alternating); lines' OpenVINO "
          f"settings: {args.ov_config or 'the product defaults'}; target: aggregate >= {TARGET_SHARE:.0%} of raw "
          f"at 4 lines\n")
    header = ("lines", "raw fps (requests)", "aggregate fps", "share of raw (min..max)", "fps per line",
              "p95 latency per line ms (nearest rank)", "CPU-ms/frame raw / lines (share)", "RSS per line MiB",
              "USS per line MiB", "load 1 min")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        print(" | ".join([
            str(row["count"]), f"{row['raw_fps']:.1f} (x{row['requests']})", f"{row['total_fps']:.1f}",
            f"{row['share']:.0%} ({row['share_min']:.0%}..{row['share_max']:.0%})",
            ", ".join(f"{fps:.1f}" for fps in row["line_fps"]), ", ".join(f"{p95:.0f}" for p95 in row["p95"]),
            f"{row['raw_cpu_ms']:.1f} / {row['line_cpu_ms']:.1f} ({row['raw_cpu_ms'] / row['line_cpu_ms']:.0%})",
            ", ".join(f"{rss:.0f}" for rss in row["rss"]), ", ".join(f"{uss:.0f}" for uss in row["uss"]),
            f"{row['load']:.1f}"]))
    exits = sum(1 for row in rows for code in row["exits"] if code)
    if exits:
        print(f"\n{exits} line process(es) reported, stopped, then died at interpreter exit (see above)")


if __name__ == "__main__":
    main()
