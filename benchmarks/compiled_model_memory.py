"""What a compiled model's memory is made of, per process, and whether OpenVINO's own mechanisms share it.

Starts ``--processes`` processes one after another, each compiling the IR the way a line does
(``AnomalyModel``, THROUGHPUT hint) and running a few frames, then reads every process's
``/proc/PID/smaps_rollup`` and ``smaps`` while all are alive. Variants:

- ``compile``: today's load (read_model mmaps the ``.bin``; the plugin compiles);
- ``cache``: OpenVINO's model cache (``CACHE_DIR`` in a fresh folder, ``ENABLE_MMAP`` on by default):
  the first process compiles and exports a blob, the next ones import it;
- ``f32``: ``INFERENCE_PRECISION_HINT=f32``, so no bf16 conversion of the weights is needed.

Private anonymous memory (``Pss_Anon`` of a process no other shares with) is what each added line
costs; file pages (the ``.bin`` or the blob) are shared through the page cache. The largest anonymous
mapping names the plugin's own copy of the weights.

    .venv/bin/python benchmarks/compiled_model_memory.py --variants compile cache f32 --processes 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

_RANGE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$")


def rollup(pid: int | str) -> dict[str, float]:
    figures = {}
    with open(f"/proc/{pid}/smaps_rollup") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                figures[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return figures


def largest_anonymous(pid: int) -> float:
    """MiB resident in the largest anonymous mapping (the plugin's weight copy, when it makes one)."""
    largest, current = 0.0, False
    with open(f"/proc/{pid}/smaps") as lines:
        for line in lines:
            match = _RANGE.match(line)
            if match:
                current = not match.group(3)
            elif current and line.startswith("Rss:"):
                largest = max(largest, int(line.split()[1]) / 1024)
    return largest


def child(model_dir: Path, variant: str, cache_dir: str) -> None:
    import numpy as np
    import openvino as ov

    from infra.openvino_model import AnomalyModel, _ov_core

    if variant == "cache":
        _ov_core().set_property({"CACHE_DIR": cache_dir})
    if variant == "f32":
        _ov_core().set_property("CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    started = time.perf_counter()
    model = AnomalyModel(model_dir, performance_hint="THROUGHPUT")
    load_s = time.perf_counter() - started
    queue = ov.AsyncInferQueue(model.compiled)
    frame = np.zeros((480, 640, 3), np.uint8)
    for _ in range(4 * len(queue)):
        queue.start_async({0: model.preprocess(frame)})
    queue.wait_all()
    print(json.dumps({"load_s": load_s}), flush=True)
    sys.stdin.readline()


def run(variant: str, model_dir: Path, processes: int) -> None:
    with tempfile.TemporaryDirectory() as cache_dir:
        children, loads = [], []
        try:
            for _ in range(processes):
                process = subprocess.Popen([sys.executable, __file__, "--child", variant, "--model-dir", str(model_dir),
                                            "--cache-dir", cache_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           text=True, cwd=REPO_ROOT)
                children.append(process)
                line = process.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise RuntimeError(f"a {variant} process failed (exit {process.wait()})")
                loads.append(json.loads(line)["load_s"])
            figures = [(rollup(process.pid), largest_anonymous(process.pid)) for process in children]
            blobs = sorted(path.stat().st_size for path in Path(cache_dir).glob("*.blob"))
        finally:
            for process in children:
                if process.poll() is None:
                    process.stdin.close()  # type: ignore[union-attr]
                    process.wait(timeout=60)
        blob = ", ".join(f"{size / 1e6:.1f} MB" for size in blobs) or "-"
        for index, ((memory, anonymous), load_s) in enumerate(zip(figures, loads, strict=True)):
            print(f"{variant} | {index + 1} | {load_s:.2f} | {memory['Pss']:.0f} | {memory['Pss_Anon']:.0f} | "
                  f"{memory['Pss_File']:.0f} | {anonymous:.0f} | {blob}", flush=True)
        print(f"{variant} | sum | | {sum(memory['Pss'] for memory, _ in figures):.0f} | | | |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["compile", "cache", "f32"],
                        choices=["compile", "cache", "f32"])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, default=None, help="anomalib OpenVINO export (default: tiny PaDiM)")
    parser.add_argument("--mtd-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mtd")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model_dir, args.child, args.cache_dir)
        return
    model_dir = args.model_dir
    if model_dir is None:
        from benchmarks.pipeline import default_model_dir, images_for

        with tempfile.TemporaryDirectory() as scratch:
            model_dir = default_model_dir(*images_for(args.mtd_dir, Path(scratch), 48))
    bin_size = sum(path.stat().st_size for path in Path(model_dir).rglob("*.bin"))
    print(f"model {model_dir} (.bin {bin_size / 1e6:.1f} MB); MiB per process, all alive; "
          f"load {os.getloadavg()[0]:.1f}\n")
    print("variant | process | load s | PSS | PSS anon (private) | PSS file | largest anon mapping | cache blob")
    print("--- | --- | --- | --- | --- | --- | --- | ---")
    for variant in args.variants:
        run(variant, model_dir, args.processes)


if __name__ == "__main__":
    main()
