"""Training throughput with one and with two training workers: the same PaDiM jobs, as jobs per hour.

Starts `geti-inspect serve` (its `training` worker runs one job at a time, INSPECT_TRAINING_CONCURRENCY=1)
and a second `geti-inspect worker --pool training` from its own data dir with only the shared settings
(database, S3 API, Prefect and MLflow addresses), as another machine would. Uploads a data set through
the API, freezes one snapshot, then submits N PaDiM trainings (default 6) per configuration:

- **1 worker**: the second worker's processes are stopped (SIGSTOP: it polls nothing and uses no CPU);
- **2 workers**: it runs (SIGCONT) and is online in the pool before the first submission.

On a shared machine the load drifts over minutes, so the jobs go in rounds of `--round` (default 2)
submitted back to back, the configurations alternating (1,2 / 2,1 / 1,2 ...), and each round starts once
the platform's processes are idle (spare engines done importing: steady state). A round's wall time runs
from its first submission to its last job's end (the job API's `finished_at`); jobs/hour is N over the
summed wall time. Shared state: `--database-url` or a SQLite file outside both data dirs; storage in an S3
API (`--s3-endpoint-url`, else `moto_server` when installed); without one the second worker shares
`serve`'s data dir (local storage: a second worker on the same machine). Images: the MTD tiles from
../shared/data/mtd when present, else synthetic parts.

    .venv/bin/python benchmarks/workers.py
    .venv/bin/python benchmarks/workers.py --jobs 4 --normal 30
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.support import load, wait_until  # noqa: E402
from infra.supervisor.stack import TRAINING_POOL, worker_name  # noqa: E402
from tests.machines import SharedState, moto_binary, online_workers, s3_api, serve, worker, workers_that_ran  # noqa: E402
from tests.synthetic_parts import write_parts  # noqa: E402

MTD_DIR = REPO_ROOT.parent / "shared" / "data" / "mtd"
TRAINING = {"architecture": "padim",
            "parameters": {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "blocks.4"]}}
FINAL = ("completed", "failed", "cancelled")


def images(root: Path, normal: int, anomalous: int) -> tuple[list[Path], list[Path], str]:
    """(normal, anomalous) image files and where they come from: MTD tiles if present, else synthetic parts."""
    source = MTD_DIR if (MTD_DIR / "MT_Free" / "Imgs").is_dir() else None
    if source is None:
        source = write_parts(root / "parts", {"MT_Free": normal, "MT_Crack": anomalous - anomalous // 2,
                                              "MT_Blowhole": anomalous // 2})

    def first(defect: str, count: int) -> list[Path]:
        return sorted((source / defect / "Imgs").glob("*.jpg"))[:count]

    bad = first("MT_Crack", anomalous - anomalous // 2) + first("MT_Blowhole", anomalous // 2)
    return first("MT_Free", normal), bad, "MTD tiles" if source == MTD_DIR else "synthetic parts"


def upload(http: httpx.Client, project_id: str, paths: list[Path], label: str) -> None:
    for start in range(0, len(paths), 20):
        files = [("files", (path.name, path.read_bytes(), "image/jpeg")) for path in paths[start:start + 20]]
        http.post(f"/projects/{project_id}/media", data={"label": label}, files=files).raise_for_status()


def _tree(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        with suppress(psutil.Error):
            root = psutil.Process(pid)
            found += [root, *root.children(recursive=True)]
    return found


def _cpu_percent(process: psutil.Process) -> float:
    """% of one core since the last call for this process (0 when it is gone)."""
    try:
        return process.cpu_percent(None)
    except psutil.Error:
        return 0.0


def wait_idle(pids: list[int], timeout_s: float = 240, threshold: float = 30.0) -> None:
    """Until these processes and all their descendants use under `threshold` % of one core over 2 s: the workers'
    spare engines have done their imports, so a batch measures steady state."""
    def busy() -> float:
        processes = _tree(pids)
        for process in processes:
            _cpu_percent(process)
        time.sleep(2.0)
        return sum(_cpu_percent(process) for process in processes)

    wait_until(lambda: busy() < threshold, timeout_s, "the platform to go idle", interval_s=0.0)


def batch(http: httpx.Client, project_id: str, snapshot_id: str, jobs: int, label: str) -> tuple[float, list[dict]]:
    """Submit `jobs` trainings back to back; (seconds from the first submission to the last end, final jobs)."""
    submitted = datetime.now().astimezone()
    job_ids = []
    for index in range(jobs):
        response = http.post(f"/projects/{project_id}/train",
                             json={"model_name": f"{label}-{index}", "snapshot_id": snapshot_id, **TRAINING})
        response.raise_for_status()
        job_ids.append(response.json()["job_id"])

    def finished() -> list[dict] | None:
        found = [http.get(f"/jobs/{job_id}").json() for job_id in job_ids]
        return found if all(job["status"] in FINAL for job in found) else None

    done = wait_until(finished, 3600, f"{jobs} trainings ({label})", interval_s=1.0)
    failed = [job for job in done if job["status"] != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} training(s) did not complete: {failed[0]}")
    last = max(_instant(job["finished_at"]) for job in done)
    return (last - submitted).total_seconds(), done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=6, help="PaDiM trainings per batch")
    parser.add_argument("--normal", type=int, default=40, help="normal images uploaded")
    parser.add_argument("--anomalous", type=int, default=10, help="anomalous images uploaded")
    parser.add_argument("--round", type=int, default=2, help="jobs per round (configurations alternate by round)")
    parser.add_argument("--database-url", default=None, help="shared database (default: a SQLite file)")
    parser.add_argument("--s3-endpoint-url", default=None, help="shared S3 API (default: moto_server if installed)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        endpoint = args.s3_endpoint_url
        if endpoint is None and moto_binary() is not None:
            endpoint = stack.enter_context(s3_api(root / "moto.log"))
        shared = SharedState(args.database_url or f"sqlite:///{root / 'shared.db'}", endpoint)
        env = {**shared.env(), "INSPECT_TRAINING_CONCURRENCY": "1"}
        if args.s3_endpoint_url:  # a real S3 API: the caller's credentials, not moto's dummies
            env = {key: value for key, value in env.items() if not key.startswith("AWS_")}
        print(f"# shared state: {shared.database_url.split(':')[0]} database, "
              f"{'S3 API ' + endpoint if endpoint else 'local storage (the second worker shares the data dir)'}")
        platform = stack.enter_context(serve(root / "serve-data", env, root / "serve.log"))
        http = stack.enter_context(httpx.Client(base_url=platform.api_url, timeout=120))
        normal, anomalous, origin = images(root, args.normal, args.anomalous)
        project = http.post("/projects", json={"name": f"workers {uuid.uuid4().hex[:6]}"}).json()
        upload(http, project["id"], normal, "normal")
        upload(http, project["id"], anomalous, "anomalous")
        snapshot = http.post(f"/projects/{project['id']}/snapshots", json={"name": "benchmark"}).json()
        def frozen() -> dict | None:
            found = http.get(f"/snapshots/{snapshot['id']}").json()
            return found if found["status"] != "pending" else None

        if (final := wait_until(frozen, 600, "the snapshot", interval_s=1.0))["status"] != "ready":
            raise RuntimeError(f"the snapshot did not freeze: {final}")
        print(f"# {len(normal)} normal + {len(anomalous)} anomalous {origin}; PaDiM {TRAINING['parameters']}; "
              f"{os.cpu_count()} CPU cores")

        machine_dir = root / "machine-2" if endpoint else platform.data_dir
        second = stack.enter_context(worker(machine_dir, {**env, **platform.join_env()}, root / "worker.log"))
        names = {worker_name(TRAINING_POOL, platform.process.pid): "serve",
                 worker_name(TRAINING_POOL, second.pid): "2nd"}
        tallies = {1: Tally(), 2: Tally()}
        for index, size in enumerate(round_sizes(args.jobs, args.round)):
            for workers in ((1, 2) if index % 2 == 0 else (2, 1)):
                with paused(second.pid) if workers == 1 else nullcontext():
                    if workers == 2:
                        wait_until(lambda: worker_name(TRAINING_POOL, second.pid) in online_workers(
                            platform.prefect_api_url, TRAINING_POOL), 120, "the second worker back online",
                                   interval_s=1.0)
                    wait_idle([platform.process.pid, second.pid])
                    tallies[workers].loads.append(float(load()))
                    wall_s, done = batch(http, project["id"], snapshot["id"], size, f"w{workers}-r{index}")
                tallies[workers].add(wall_s, done)
                print(f"# round {index + 1}, {workers} worker(s): {size} jobs in {wall_s:.0f} s, load {load()}",
                      flush=True)
        report(tallies, args.jobs, names, platform.prefect_api_url)


def round_sizes(jobs: int, size: int) -> list[int]:
    return [min(size, jobs - start) for start in range(0, jobs, size)]


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process and its descendants stopped (SIGSTOP): a worker that takes no job and uses no CPU."""
    root = psutil.Process(pid)
    root.suspend()  # first, so it starts nothing new while its children are stopped
    tree = [root, *root.children(recursive=True)]
    for process in tree[1:]:
        with suppress(psutil.Error):
            process.suspend()
    try:
        yield
    finally:
        for process in reversed(tree):
            with suppress(psutil.Error):
                process.resume()


@dataclass
class Tally:
    wall_s: float = 0.0
    jobs: list[dict] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def add(self, wall_s: float, jobs: list[dict]) -> None:
        self.wall_s += wall_s
        self.jobs += jobs

    def mean_job_s(self) -> float:
        durations = [(_instant(job["finished_at"]) - _instant(job["started_at"])).total_seconds() for job in self.jobs]
        return sum(durations) / len(durations)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def report(tallies: dict[int, Tally], jobs: int, names: dict[str, str], prefect_api_url: str) -> None:
    print()
    print("| training workers | jobs | wall s (sum of rounds) | jobs/hour | mean job s (start->end) "
          "| jobs per worker | load 1 min at round starts |")
    print("|---|---|---|---|---|---|---|")
    per_hour = {}
    for workers, tally in tallies.items():
        per_hour[workers] = jobs / tally.wall_s * 3600
        ran = Counter(workers_that_ran(prefect_api_url, [job["id"] for job in tally.jobs]).values())
        spread = ", ".join(f"{names.get(name, name)} {count}" for name, count in sorted(ran.items()))
        loads = f"{min(tally.loads):.1f}-{max(tally.loads):.1f}"
        print(f"| {workers} | {jobs} | {tally.wall_s:.0f} | {per_hour[workers]:.0f} | {tally.mean_job_s():.0f} "
              f"| {spread} | {loads} |")
    print(f"\n2 workers / 1 worker: {per_hour[2] / per_hour[1]:.2f}x jobs/hour (baseline: 1 worker, same run)")
    if (os.cpu_count() or 1) <= 4:
        print(f"note: both workers share this machine's {os.cpu_count()} cores, so the second one mostly overlaps "
              "each job's non-CPU time (engine hand-over, MLflow and S3 calls, polling), and while other work "
              "loads the machine (see the load column) two job processes also get a larger share of its CPU than "
              "one; on a second machine the second worker's CPU adds to the first's.")


if __name__ == "__main__":
    main()
