"""End-to-end pipeline throughput, latency and memory against the raw OpenVINO model.

Runs, in one process on one machine:

1. one long runtime run of ``--seconds`` (default 10 minutes; first, so the process holds
   nothing else): fps, per-frame latency percentiles (read → published) and resident memory
   sampled through the run; unpaced unless ``--fps`` is given;
2. the raw compiled model in a synchronous loop on one pre-processed frame (LATENCY hint);
3. ``--rounds`` interleaved pairs: the raw model behind an AsyncInferQueue (THROUGHPUT hint,
   the same way the runtime scores), then the full runtime (video file → decode → pre-process
   → inference → latest frame) unpaced, each for ``--round-seconds``. Back-to-back pairs see the
   same background load, and CPU time per frame shows the pipeline's own overhead even when
   other processes share the cores.

Prints a table. The model is ``--model-dir`` (an anomalib OpenVINO export) or, by default, the
tiny PaDiM export the tests train (random resnet18: same compute as a pretrained one), on the MTD
tiles of ``--mtd-dir`` or, without them, on the tests' synthetic parts.

    .venv/bin/python benchmarks/pipeline.py --seconds 60
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openvino as ov
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from infra.openvino_model import AnomalyModel  # noqa: E402
from pipelines.events import SourceInfo  # noqa: E402
from pipelines.metrics import MetricsTracker  # noqa: E402
from pipelines.runtime import PipelineRuntime  # noqa: E402
from pipelines.sources import build_source  # noqa: E402


def default_model_dir(images_dir: Path, data_key: str) -> Path:
    from tests.integration.pipeline_helpers import tiny_padim_key, train_tiny_padim

    cache = REPO_ROOT / ".pytest_cache" / "d" / f"tiny-padim-{tiny_padim_key(data_key)}"
    return train_tiny_padim(images_dir, cache)


def images_for(mtd_dir: Path, scratch: Path, frames: int) -> tuple[Path, str]:
    """The MTD tiles when present, else synthetic parts (tests/synthetic_parts.py): (folder, data key)."""
    if mtd_dir.is_dir():
        return mtd_dir, "mtd"
    from tests.integration.pipeline_helpers import synthetic_parts_key
    from tests.synthetic_parts import write_parts

    print(f"no MTD tiles at {mtd_dir}: using synthetic parts", flush=True)
    counts = {"MT_Free": max(16, frames * 3 // 4), "MT_Crack": max(4, frames - frames * 3 // 4)}
    return write_parts(scratch / "parts", counts), synthetic_parts_key()


def make_video(images_dir: Path, out: Path, frames: int, size: tuple[int, int]) -> Path:
    from tests.integration.pipeline_helpers import class_images, frames_from, write_video

    good, cracked = frames * 3 // 4, frames - frames * 3 // 4
    paths = class_images(images_dir, "MT_Free", good) + class_images(images_dir, "MT_Crack", cracked)
    return write_video(out, frames_from(paths, size), fps=30)


def prepare(
    model_dir: Path | None, mtd_dir: Path, scratch: Path, frames: int, size: tuple[int, int]
) -> tuple[Path, Path, np.ndarray]:
    """(model, looping video in `scratch`, its first frame); `scratch` becomes the folder sources may read."""
    os.environ["INSPECT_ALLOWED_PATHS"] = str(scratch)  # child processes inherit it
    images_dir, data_key = images_for(mtd_dir, scratch, frames)
    model_dir = model_dir or default_model_dir(images_dir, data_key)
    video = make_video(images_dir, scratch / "bench.avi", frames, size)
    source = build_source("video_file", {"path": str(video)})
    source.open()
    frame = source.read(1.0).image
    source.close()
    print(f"model {model_dir}; video {size[0]}x{size[1]} MJPG, {frames} frames looped; "
          f"{psutil.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}", flush=True)
    return model_dir, video, frame


def raw_sync_fps(model_dir: Path, frame: np.ndarray, seconds: float) -> tuple[float, float]:
    """(fps, CPU ms per frame) of one request in a loop, LATENCY hint (one inference uses every core)."""
    model = AnomalyModel(model_dir, performance_hint="LATENCY")
    tensor = model.preprocess(frame)
    request = model.compiled.create_infer_request()
    for _ in range(5):
        request.infer({0: tensor})
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        request.infer({0: tensor})
        count += 1
    return count / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / count


def raw_async_fps(model_dir: Path, frame: np.ndarray, seconds: float) -> tuple[float, int, float]:
    """(fps, requests, CPU ms per frame) of an AsyncInferQueue kept full with one pre-processed frame."""
    throughput = AnomalyModel(model_dir, performance_hint="THROUGHPUT")
    tensor = throughput.preprocess(frame)
    queue = ov.AsyncInferQueue(throughput.compiled)  # optimal number of requests for the hint
    for _ in range(2 * len(queue)):
        queue.start_async({0: tensor})
    queue.wait_all()
    done = [0]
    queue.set_callback(lambda request, userdata: done.__setitem__(0, done[0] + 1))
    started, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        queue.start_async({0: tensor})
    queue.wait_all()
    cpu_ms = (time.process_time() - cpu) * 1000 / max(done[0], 1)
    return done[0] / (time.perf_counter() - started), len(queue), cpu_ms


def start_runtime(model_dir: Path, video: Path, metrics: MetricsTracker, fps: float | None = None) -> PipelineRuntime:
    runtime = PipelineRuntime(
        pipeline_id="bench",
        active_pipeline_id="bench",
        source=build_source("video_file", {"path": str(video)}),
        source_info=SourceInfo("video_file", "bench"),
        model_dir=model_dir,
        sinks=[],
        threshold=0.5,
        fps=fps,
        metrics=metrics,
    )
    runtime.start()
    return runtime


def interleaved(model_dir: Path, video: Path, frame: np.ndarray, rounds: int, seconds: float) -> list[tuple]:
    """Raw async and pipeline measured back to back, so both see the same background load.

    Returns (raw fps, raw CPU ms/frame, pipeline fps, pipeline CPU ms/frame) per round. CPU time per
    frame (all threads of this process) is the steadier figure on a shared machine: it is what each
    frame costs, whatever else competes for the cores.
    """
    pairs = []
    for index in range(rounds):
        raw, _, raw_cpu = raw_async_fps(model_dir, frame, seconds)
        metrics = MetricsTracker()
        runtime = start_runtime(model_dir, video, metrics)
        time.sleep(1.5)  # compile and fill the queues
        frames, started, cpu = metrics.frames_processed, time.monotonic(), time.process_time()
        time.sleep(seconds)
        count = metrics.frames_processed - frames
        fps = count / (time.monotonic() - started)
        cpu_ms = (time.process_time() - cpu) * 1000 / max(count, 1)
        runtime.stop()
        pairs.append((raw, raw_cpu, fps, cpu_ms))
        print(
            f"  round {index + 1}: raw async {raw:5.1f} fps {raw_cpu:5.1f} CPU-ms/frame | "
            f"pipeline {fps:5.1f} fps {cpu_ms:5.1f} CPU-ms/frame",
            flush=True,
        )
    return pairs


def run_pipeline(
    model_dir: Path, video: Path, seconds: float, sample_s: float, warmup_s: float, fps: float | None
) -> dict:
    process = psutil.Process()
    before = process.memory_info().rss
    metrics = MetricsTracker(latency_window=10_000_000)  # keep every latency of the run for percentiles
    runtime = start_runtime(model_dir, video, metrics, fps)
    time.sleep(warmup_s)
    frames_start, started = metrics.frames_processed, time.monotonic()
    skip = len(metrics.latencies_ms())
    rss = [process.memory_info().rss]
    while time.monotonic() - started < seconds:
        time.sleep(min(sample_s, max(0.0, seconds - (time.monotonic() - started))))
        rss.append(process.memory_info().rss)
        print(
            f"  t={time.monotonic() - started:6.0f}s frames={metrics.frames_processed - frames_start:7d} "
            f"fps={metrics.fps():5.1f} rss={rss[-1] / 2**20:7.1f} MiB",
            flush=True,
        )
    elapsed = time.monotonic() - started
    frames = metrics.frames_processed - frames_start
    latencies = metrics.latencies_ms()[skip:]
    status = runtime.status()
    runtime.stop()
    return {
        "fps": frames / elapsed,
        "frames": frames,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "inference_ms": status["metrics"]["avg_inference_time_ms"],
        "rss": rss,
        "rss_before": before,
        "dropped": status["metrics"]["frames_dropped"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600, help="long pipeline run, for memory (default 600)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved raw/pipeline rounds (default 3)")
    parser.add_argument("--round-seconds", type=float, default=8, help="each half of a round (default 8)")
    parser.add_argument("--fps", type=float, default=None, help="pace the long run (default: unpaced, max rate)")
    parser.add_argument("--warmup", type=float, default=5, help="long-run seconds not measured (default 5)")
    parser.add_argument("--sample", type=float, default=None, help="RSS sample interval (default seconds/20, >=1)")
    parser.add_argument("--model-dir", type=Path, default=None, help="anomalib OpenVINO export (default: tiny PaDiM)")
    parser.add_argument("--mtd-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mtd")
    parser.add_argument("--frame-size", default="640x480", help="video frame size WxH (default 640x480)")
    parser.add_argument("--frames", type=int, default=48, help="distinct frames in the looping video (default 48)")
    args = parser.parse_args()
    width, height = (int(part) for part in args.frame_size.lower().split("x"))
    size = (width, height)
    sample_s = args.sample or max(1.0, args.seconds / 20)

    with tempfile.TemporaryDirectory() as scratch:
        model_dir, video, frame = prepare(args.model_dir, args.mtd_dir, Path(scratch), args.frames, size)
        # The long run goes first, in a process that has loaded nothing else, so RSS is the pipeline's own.
        print(f"pipeline for {args.seconds:g} s…", flush=True)
        result = run_pipeline(model_dir, video, args.seconds, sample_s, args.warmup, args.fps)
        print("raw model, sync loop…", flush=True)
        sync_fps, sync_cpu = raw_sync_fps(model_dir, frame, args.round_seconds)
        print(f"raw async vs pipeline, {args.rounds} interleaved rounds…", flush=True)
        rounds = interleaved(model_dir, video, frame, args.rounds, args.round_seconds)
        _, requests, _ = raw_async_fps(model_dir, frame, 0.5)

    raw_fps, raw_cpu, pipe_fps, pipe_cpu = (statistics.median(column) for column in zip(*rounds, strict=True))
    fps_ratio = statistics.median(pipe / raw for raw, _, pipe, _ in rounds)
    rss = [value / 2**20 for value in result["rss"]]
    load = psutil.getloadavg()
    rows = [
        ("raw model, sync loop (LATENCY)", f"{sync_fps:.1f} fps, {sync_cpu:.1f} CPU-ms/frame"),
        (f"raw model, AsyncInferQueue x{requests} (THROUGHPUT)", f"{raw_fps:.1f} fps, {raw_cpu:.1f} CPU-ms/frame"),
        ("pipeline end to end (same rounds)", f"{pipe_fps:.1f} fps, {pipe_cpu:.1f} CPU-ms/frame"),
        ("pipeline / raw async, throughput", f"{100 * fps_ratio:.0f} % (median of per-round ratios)"),
        ("pipeline / raw async, by CPU cost", f"{100 * raw_cpu / pipe_cpu:.0f} % (raw CPU-ms / pipeline CPU-ms)"),
        (
            f"long run {args.seconds:g} s ({f'paced at {args.fps:g}' if args.fps else 'unpaced'}): fps",
            f"{result['fps']:.1f} fps ({result['frames']} frames)",
        ),
        (f"long run: latency read→published p50 / p95 (numpy, linear interpolation, {result['frames']} frames)",
         f"{result['p50']:.1f} / {result['p95']:.1f} ms"),
        ("long run: avg inference (pre-process + infer)", f"{result['inference_ms']:.1f} ms"),
        ("long run: frames dropped", str(result["dropped"])),
        (
            "long run: RSS before start / after warm-up / end / max",
            f"{result['rss_before'] / 2**20:.0f} / {rss[0]:.0f} / {rss[-1]:.0f} / {max(rss):.0f} MiB",
        ),
        ("long run: RSS growth after warm-up", f"{rss[-1] - rss[0]:+.1f} MiB over {len(rss)} samples"),
        ("load average at the end (1 / 5 min)", f"{load[0]:.1f} / {load[1]:.1f} on {psutil.cpu_count()} CPUs"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\nno sinks; an unpaced run (video as fast as the model goes) includes queueing in its latency")
    print(f"{'measure'.ljust(width)} | value")
    print(f"{'-' * width}-|-{'-' * 44}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
