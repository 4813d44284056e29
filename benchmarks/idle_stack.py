"""What an idle `geti-inspect serve` costs: CPU time of every process of the stack, per process.

Starts `geti-inspect serve` (API, Prefect server, MLflow server, a training and an inference worker with
their fork servers) on a temporary data dir and free loopback ports, waits until `/api/health` answers
ok, rests (`--rest`, default 60 s), then samples the CPU time (user + system) of every descendant of
`serve` over the window (`--window`, default 120 s) and prints, per process, the share of one core it
used, and the total. Nothing is submitted: no job, no line, no client besides the health requests
until ready. The target (issue 20, section 5) is a total of at most 3 % of one core.

Modes, each a fresh `serve` on a fresh data dir, in the order given:
  `baseline` the code of `--baseline-ref` (default: the commit before the idle-cost change), unpacked
             with `git archive` into the scratch dir and run from there;
  `today`    this checkout.

    .venv/bin/python benchmarks/idle_stack.py                               # baseline, then today
    .venv/bin/python benchmarks/idle_stack.py --modes today --window 30 --rest 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.support import load, start_process, stop_process, wait_until  # noqa: E402
from tests.network import free_port  # noqa: E402

TARGET_PERCENT = 3.0
# The last commit before the idle-cost change (event-woken job index and workers, calmer Prefect server).
BEFORE_IDLE_COST = "0b67d5bee241a061d4a788de9279c32a8f76f2ce"


@dataclass
class ProcessSample:
    """CPU seconds of one process at the window's start (0 if born during it) and when last seen."""

    label: str
    first_s: float
    last_s: float


@dataclass
class Window:
    processes: dict[tuple[int, float], ProcessSample] = field(default_factory=dict)
    born: int = 0
    seconds: float = 0.0

    def per_label(self) -> dict[str, tuple[float, int]]:
        """label -> (% of one core, process count)."""
        used: dict[str, float] = defaultdict(float)
        count: dict[str, int] = defaultdict(int)
        for sample in self.processes.values():
            used[sample.label] += sample.last_s - sample.first_s
            count[sample.label] += 1
        return {label: (100 * used[label] / self.seconds, count[label]) for label in used}


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def label_of(process: psutil.Process, root_pid: int) -> str:
    """A stable name for a process of the stack, from its command line (pids change from run to run)."""
    if process.pid == root_pid:
        return "serve (API, pollers, supervisor)"
    args = process.cmdline()
    line = " ".join(args)
    if "warm_engine" in line and "--fork-server" in line:
        parent = process.parent()
        return f"fork server ({label_of(parent, root_pid)})" if parent else "fork server"
    if "warm_worker" in line and "--pool" in args:
        return f"worker {args[args.index('--pool') + 1]}"
    if "prefect" in line and "server" in line and "start" in line:
        return "prefect server"
    if "mlflow" in line and " server" in line:
        return "mlflow server"
    parent = process.parent()
    parent_label = label_of(parent, root_pid) if parent is not None and parent.pid != root_pid else "serve"
    return f"{parent_label} > {Path(args[0]).name if args else process.name()}"


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def sample_window(root: psutil.Process, seconds: float, every_s: float = 1.0) -> Window:
    """CPU time used by the tree under `root` over `seconds`, sampled every `every_s` (new processes join)."""
    window = Window()
    started = time.monotonic()
    first_round = True
    while True:
        for process in tree(root):
            try:
                key = (process.pid, process.create_time())
                spent = cpu_seconds(process)
                if key not in window.processes:
                    window.processes[key] = ProcessSample(label_of(process, root.pid),
                                                          spent if first_round else 0.0, spent)
                    window.born += 0 if first_round else 1
                window.processes[key].last_s = spent
            except psutil.Error:
                continue
        first_round = False
        window.seconds = time.monotonic() - started
        if window.seconds >= seconds:
            return window
        time.sleep(min(every_s, seconds - window.seconds))


def unpack(ref: str, target: Path) -> Path:
    """The repository's tree at `ref`, as files under `target`."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def measure(mode: str, window_s: float, rest_s: float, baseline_ref: str) -> Window:
    scratch = Path(tempfile.mkdtemp(prefix=f"idle-{mode}-"))
    code = unpack(baseline_ref, scratch / "code") if mode == "baseline" else REPO_ROOT
    port, prefect_port, mlflow_port = free_port(), free_port(), free_port()
    env = {**os.environ, "INSPECT_PREFECT_PORT": str(prefect_port), "INSPECT_MLFLOW_PORT": str(mlflow_port),
           "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    serve = start_process([sys.executable, "-m", "api.cli", "serve", "--data-dir", str(scratch / "data"),
                           "--port", str(port)], env, scratch / "serve.log", cwd=code)
    try:
        started = time.monotonic()

        def healthy() -> bool:
            if serve.poll() is not None:
                raise RuntimeError(f"serve exited with {serve.returncode}: see {scratch / 'serve.log'}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 300, "serve healthy", interval_s=1.0)
        print(f"[{mode}] healthy after {time.monotonic() - started:.1f} s; resting {rest_s:.0f} s", flush=True)
        time.sleep(rest_s)
        print(f"[{mode}] sampling {window_s:.0f} s (load {load()})", flush=True)
        window = sample_window(psutil.Process(serve.pid), window_s)
        print(f"[{mode}] done (load {load()})", flush=True)
        return window
    finally:
        stop_process(serve, grace_s=60)


def print_window(mode: str, window: Window) -> float:
    rows = sorted(window.per_label().items(), key=lambda item: -item[1][0])
    total = sum(percent for percent, _ in window.per_label().values())
    print(f"\n{mode}: {window.seconds:.0f} s window, {len(window.processes)} processes "
          f"({window.born} born during it)")
    for label, (percent, count) in rows:
        print(f"  {percent:6.2f} %  {label}{f' (x{count})' if count > 1 else ''}")
    print(f"  {total:6.2f} %  total (target <= {TARGET_PERCENT:g} % of one core)")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=["baseline", "today"], default=["baseline", "today"])
    parser.add_argument("--window", type=float, default=120.0, help="seconds sampled")
    parser.add_argument("--rest", type=float, default=60.0, help="seconds of rest after ready, before sampling")
    parser.add_argument("--baseline-ref", default=BEFORE_IDLE_COST, help="git commit the baseline runs")
    options = parser.parse_args()
    print(f"idle stack: {os.cpu_count()} CPUs, load {load()}, window {options.window:.0f} s after "
          f"{options.rest:.0f} s rest; baseline {options.baseline_ref[:10]}")
    totals = {mode: print_window(mode, measure(mode, options.window, options.rest, options.baseline_ref))
              for mode in options.modes}
    if len(totals) > 1:
        print("\n" + ", ".join(f"{mode} {total:.2f} %" for mode, total in totals.items()) + " of one core")


if __name__ == "__main__":
    main()
