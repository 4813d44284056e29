"""Training throughput with one and with two training workers: the same PaDiM jobs, as jobs per hour.

Starts `geti-inspect serve` (its `training` worker runs one job at a time, INSPECT_TRAINING_CONCURRENCY=1),
uploads a data set through the API, freezes one snapshot, and then runs the same batch twice:

- **1 worker**: N PaDiM trainings (default 6) submitted back to back on that snapshot;
- **2 workers**: a second `geti-inspect worker --pool training` started from its own data dir with only the
  shared settings (database, S3 API, Prefect and MLflow addresses), as another machine would, then the
  same N trainings.

Wall time runs from the first submission to the last job's end (the job API's `finished_at`); jobs/hour
is N over that. Each batch starts once the platform's processes are idle (the workers' spare engines have
done their imports), so both measure steady state. Shared state: `--database-url` or a SQLite file
outside both data dirs; storage in an S3 API (`--s3-endpoint-url`, else `moto_server` when installed);
without one the second worker shares `serve`'s data dir (local storage: a second worker on the same
machine). Images: the MTD tiles from ../shared/data/mtd when present, else synthetic parts.

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
from contextlib import ExitStack, suppress
from datetime import datetime
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.support import load  # noqa: E402
from tests.machines import SharedState, moto_binary, s3_api, serve, worker, workers_that_ran  # noqa: E402
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


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(interval_s)
    return value


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

    done = wait_until(finished, 3600, f"{jobs} trainings ({label})")
    failed = [job for job in done if job["status"] != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} training(s) did not complete: {failed[0]}")
    last = max(datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")) for job in done)
    return (last - submitted).total_seconds(), done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=6, help="PaDiM trainings per batch")
    parser.add_argument("--normal", type=int, default=40, help="normal images uploaded")
    parser.add_argument("--anomalous", type=int, default=10, help="anomalous images uploaded")
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

        if (final := wait_until(frozen, 600, "the snapshot"))["status"] != "ready":
            raise RuntimeError(f"the snapshot did not freeze: {final}")
        print(f"# {len(normal)} normal + {len(anomalous)} anomalous {origin}; PaDiM {TRAINING['parameters']}; "
              f"{os.cpu_count()} CPU cores")

        rows = []
        pids = [platform.process.pid]
        for workers in (1, 2):
            if workers == 2:
                machine_dir = root / "machine-2" if endpoint else platform.data_dir
                second = stack.enter_context(worker(machine_dir, {**env, **platform.join_env()},
                                                    root / "worker.log"))
                pids.append(second.pid)
            wait_idle(pids)
            before = load()
            wall_s, done = batch(http, project["id"], snapshot["id"], args.jobs, f"w{workers}")
            per_worker = Counter(workers_that_ran(platform.prefect_api_url, [job["id"] for job in done]).values())
            durations = [(datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
                          - datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))).total_seconds()
                         for job in done]
            rows.append((workers, args.jobs, wall_s, args.jobs / wall_s * 3600, sum(durations) / len(durations),
                         "/".join(str(count) for count in sorted(per_worker.values(), reverse=True)),
                         f"{before} -> {load()}"))
            print(f"# {workers} worker(s): {args.jobs} jobs in {wall_s:.0f} s", flush=True)

        print()
        print("| training workers | jobs | wall s | jobs/hour | mean job s (start->end) | jobs per worker "
              "| load 1 min |")
        print("|---|---|---|---|---|---|---|")
        for workers, jobs, wall_s, per_hour, mean_s, spread, loads in rows:
            print(f"| {workers} | {jobs} | {wall_s:.0f} | {per_hour:.0f} | {mean_s:.0f} | {spread} | {loads} |")
        print(f"\n2 workers / 1 worker: {rows[1][3] / rows[0][3]:.2f}x jobs/hour (baseline: 1 worker, same run)")
        if (os.cpu_count() or 1) <= 4:
            print(f"note: both workers share this machine's {os.cpu_count()} cores, so the second one mostly "
                  "overlaps each job's non-CPU time (start-up, MLflow and S3 calls, waits); on a second machine "
                  "its CPU adds to the first's.")


if __name__ == "__main__":
    main()
