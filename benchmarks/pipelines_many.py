"""Many lines at once: 1, 2 and 4 live pipelines on one machine, same IR, looping video.

Each line is its own process, as each active pipeline is its own flow run of the inference worker.
Per count, measured back to back so both see the same background load:

1. the raw compiled model behind an AsyncInferQueue (THROUGHPUT hint) in one process: the
   machine's raw throughput for this IR;
2. N line processes started together, each running the full runtime (video file → decode →
   pre-process → inference → latest frame), unpaced, for ``--seconds`` after a warm-up.

Prints aggregate fps as a share of the raw throughput (target >= 90 % at 4 lines), p95 latency
(read → published) per line and resident memory per line.

    .venv/bin/python benchmarks/pipelines_many.py --lines 1 2 4 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.pipeline import default_model_dir, make_video, raw_async_fps, start_runtime  # noqa: E402
from pipelines.metrics import MetricsTracker  # noqa: E402
from pipelines.sources import build_source  # noqa: E402

TARGET_SHARE = 0.90


def run_line(model_dir: Path, video: Path, warmup_s: float, seconds: float) -> dict:
    """One line in this process: fps, latency percentiles and RSS over `seconds` after the warm-up."""
    metrics = MetricsTracker(latency_window=10_000_000)
    runtime = start_runtime(model_dir, video, metrics)
    time.sleep(warmup_s)
    frames, skip, started = metrics.frames_processed, len(metrics.latencies_ms()), time.monotonic()
    time.sleep(seconds)
    count = metrics.frames_processed - frames
    elapsed = time.monotonic() - started
    latencies = metrics.latencies_ms()[skip:]
    rss = psutil.Process().memory_info().rss
    runtime.stop()
    return {"fps": count / elapsed, "p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
            "rss_mib": rss / 2**20}


def run_lines(count: int, model_dir: Path, video: Path, warmup_s: float, seconds: float) -> list[dict]:
    """`count` line processes at once; their measuring windows overlap (same warm-up, same length)."""
    children = [subprocess.Popen([sys.executable, __file__, "--child", "--model-dir", str(model_dir),
                                  "--video", str(video), "--warmup", str(warmup_s), "--seconds", str(seconds)],
                                 stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT) for _ in range(count)]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=warmup_s + seconds + 300)
        if child.returncode != 0:
            raise RuntimeError(f"line process failed with {child.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per count (default 20)")
    parser.add_argument("--warmup", type=float, default=8, help="start-up, compile and queue fill (default 8)")
    parser.add_argument("--model-dir", type=Path, default=None, help="anomalib OpenVINO export (default: tiny PaDiM)")
    parser.add_argument("--mtd-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mtd")
    parser.add_argument("--frame-size", default="640x480")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_line(args.model_dir, args.video, args.warmup, args.seconds)))
        return

    size = tuple(int(part) for part in args.frame_size.lower().split("x"))
    model_dir = args.model_dir or default_model_dir(args.mtd_dir)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        video = make_video(args.mtd_dir, Path(scratch) / "bench.avi", args.frames, size)  # type: ignore[arg-type]
        source = build_source("video_file", {"path": str(video)})
        source.open()
        frame = source.read(1.0).image
        source.close()
        for count in args.lines:
            raw, requests, _ = raw_async_fps(model_dir, frame, args.seconds)
            load_raw = psutil.getloadavg()[0]
            lines = run_lines(count, model_dir, video, args.warmup, args.seconds)
            rows.append((count, raw, requests, lines, load_raw, psutil.getloadavg()[0]))
            print(f"  {count} line(s): raw {raw:.1f} fps, lines {[round(line['fps'], 1) for line in lines]}",
                  flush=True)

    print(f"\nmodel {model_dir}; video {size[0]}x{size[1]}, {args.frames} frames looped; {psutil.cpu_count()} CPUs; "
          f"{args.seconds:g} s per measurement; target aggregate >= {TARGET_SHARE:.0%} of raw at 4 lines\n")
    header = ("lines", "raw async fps", "aggregate fps", "share of raw", "fps per line", "p95 latency per line ms",
              "RSS per line MiB", "load raw / lines")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for count, raw, requests, lines, load_raw, load_lines in rows:
        total = sum(line["fps"] for line in lines)
        print(" | ".join([
            str(count), f"{raw:.1f} (x{requests} requests)", f"{total:.1f}", f"{total / raw:.0%}",
            ", ".join(f"{line['fps']:.1f}" for line in lines), ", ".join(f"{line['p95']:.0f}" for line in lines),
            ", ".join(f"{line['rss_mib']:.0f}" for line in lines), f"{load_raw:.1f} / {load_lines:.1f}"]))


if __name__ == "__main__":
    main()
