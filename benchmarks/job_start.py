"""How soon a job starts: submit→running of training, export and snapshot jobs, per worker start mode.

For each mode of `INSPECT_WORKER_START` (`fork`: a fork server forks each run; `spare`: one waiting
spare process, replaced after each run; `cold`: Prefect's own `python -m prefect.engine` per run,
the baseline), on a fresh platform (Prefect server and workers, MLflow; temporary data dir):

1. right after the training worker comes online in Prefect, a PaDiM training (its model serves
   the line below);
2. a live pipeline starts on the inference pool (the other pool) and runs through the rest:
   a looping video of synthetic parts at --line-fps (10, a camera's pace);
3. 9 more jobs back to back, each submitted as the previous one ends: export, snapshot and
   training jobs, mixed.

Per job, submit→running is from the client's clock at the POST to Prefect's `start_time` of the
flow run (same machine clock); submit→completed is polled. The training worker's process tree
is sampled every 0.25 s for its proportional memory (PSS: a page shared by N processes counts
1/N in each), idle before the first job and at its peak during the jobs. Target: p95
submit→running ≤ 3 s. With 10 jobs the nearest-rank p95 *is* the maximum, so the table reports and
judges the maximum under that name ("max"), which is stricter.

    .venv/bin/python benchmarks/job_start.py                 # fork, spare, cold
    .venv/bin/python benchmarks/job_start.py --modes fork --line-fps 30
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.support import load, percentile, percentile_or_max, wait_until  # noqa: E402
from tests.machines import online_workers  # noqa: E402
from tests.network import free_port  # noqa: E402

TARGET_P95_S = 3.0
FINISHED = ("completed", "failed", "cancelled")
PARAMETERS = {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "blocks.4"]}
# The 9 jobs after the first training, submitted back to back.
SEQUENCE = ["export:onnx", "snapshot", "training", "export:openvino-fp16", "snapshot", "training",
            "export:pytorch", "snapshot", "export:onnx-of-latest"]


class TreeMemory:
    """Samples the PSS of a process and its descendants in a background thread."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)

    def now_mb(self) -> float:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for process in processes:
            try:
                total += process.memory_full_info().pss
            except psutil.Error:
                continue
        return total / 2**20

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, self.now_mb())

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def state_times(prefect_api: str, job_id: str) -> dict[str, datetime]:
    """When the flow run first entered each state type (PENDING: a worker took it; RUNNING: the engine started)."""
    states = httpx.get(f"{prefect_api}/flow_run_states/", params={"flow_run_id": job_id}, timeout=10).json()
    times: dict[str, datetime] = {}
    for state in sorted(states, key=lambda state: state["timestamp"]):
        times.setdefault(state["type"], datetime.fromisoformat(state["timestamp"]))
    return times


def run_job(client, prefect_api: str, kind: str, submit: Callable[[], str]) -> dict:
    """Submit one job, wait for its end; submit→running from Prefect's start time."""
    submitted_wall, submitted = datetime.now(UTC), time.monotonic()
    job_id = submit()
    job = wait_until(lambda: (job := client.get(f"/api/jobs/{job_id}").json())["status"] in FINISHED and job,
                     900, f"{kind} job {job_id}")
    completed_s = time.monotonic() - submitted
    if job["status"] != "completed":  # type: ignore[index]
        raise RuntimeError(f"{kind} job ended {job['status']}: {job.get('error')}")  # type: ignore[index]
    times = state_times(prefect_api, job_id)
    return {"kind": kind, "running_s": (times["RUNNING"] - submitted_wall).total_seconds(),
            "created_s": (times["SCHEDULED"] - submitted_wall).total_seconds(),
            "taken_s": (times["PENDING"] - submitted_wall).total_seconds(), "completed_s": completed_s}


def seed_project(client, scratch: Path) -> str:
    from tests.synthetic_parts import write_parts

    parts = write_parts(scratch / "parts", {"MT_Free": 24, "MT_Crack": 6})
    project_id = client.post("/api/projects", json={"name": "Job start"}).json()["id"]
    for label, folder in (("normal", "MT_Free"), ("anomalous", "MT_Crack")):
        files = [("files", (path.name, path.read_bytes(), "image/jpeg"))
                 for path in sorted((parts / folder / "Imgs").glob("*.jpg"))]
        client.post(f"/api/projects/{project_id}/media", files=files, data={"label": label}).raise_for_status()
    return project_id


def start_line(client, settings, project_id: str, model_id: str, scratch: Path, fps: float | None) -> str:
    """A live pipeline on the inference pool: looping video of parts → model → folder sink."""
    from tests.integration.pipeline_helpers import class_images, frames_from, write_video

    line_dir = settings.resolved_data_dir / "line"
    line_dir.mkdir(parents=True, exist_ok=True)
    video = write_video(line_dir / "line.avi", frames_from(class_images(scratch / "parts", "MT_Free", 12)))
    source = client.post(f"/api/projects/{project_id}/sources", json={
        "type": "video_file", "name": "Line video", "config": {"path": str(video), "loop": True}}).json()
    sink = client.post(f"/api/projects/{project_id}/sinks", json={
        "type": "filesystem", "name": "Folder", "config": {"output_dir": str(line_dir / "events")}}).json()
    config = {"fps": fps} if fps else {}
    pipeline = client.post(f"/api/projects/{project_id}/pipelines", json={
        "name": "Line 1", "source_id": source["id"], "sink_id": sink["id"], "model_id": model_id,
        "config": config}).json()
    active = client.post("/api/active-pipelines", json={"pipeline_id": pipeline["id"]})
    active.raise_for_status()
    active_id = active.json()["id"]
    wait_until(lambda: client.get(f"/api/active-pipelines/{active_id}").json()["status"] == "running", 180,
               "the live pipeline to run")
    return active_id


def measure_mode(mode: str, line_fps: float | None) -> dict:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from infra.anomaly.backbones import hub_cache_dir
    from infra.anomaly.catalog import warm_up
    from infra.settings import Settings
    from infra.supervisor import Stack

    with tempfile.TemporaryDirectory(prefix=f"bench-job-start-{mode}-") as tmp:
        scratch = Path(tmp)
        settings = Settings(data_dir=scratch / "data", prefect_port=free_port(), mlflow_port=free_port(),
                            worker_start=mode, min_normal_images=4)
        stack = Stack(settings)
        stack.start()
        warm_up(hub_cache_dir(settings.resolved_data_dir))  # as `serve` does while the stack starts
        prefect_api = stack.prefect_api_url
        jobs: list[dict] = []
        try:
            with TestClient(create_app(settings, health_checks=stack.health_checks())) as client:
                project_id = seed_project(client, scratch)
                online_since = time.monotonic()
                wait_until(lambda: online_workers(prefect_api, "training"), 300, "the training worker online")
                online_after_s = time.monotonic() - online_since
                memory = TreeMemory(stack.workers["training"].pid)
                idle_mb = memory.now_mb()
                models: list[str] = []

                def train() -> str:
                    accepted = client.post(f"/api/projects/{project_id}/train", json={
                        "model_name": f"m{len(models) + 1}", "architecture": "padim", "parameters": PARAMETERS})
                    accepted.raise_for_status()
                    models.append(accepted.json()["model_id"])
                    return accepted.json()["job_id"]

                def snapshot() -> str:
                    created = client.post(f"/api/projects/{project_id}/snapshots", json={"name": "bench"})
                    created.raise_for_status()
                    return created.json()["job_id"]

                def export(variant: str) -> Callable[[], str]:
                    def submit() -> str:
                        fmt, _, compression = variant.removesuffix("-of-latest").partition("-")
                        model_id = models[-1] if variant.endswith("-of-latest") else models[0]
                        params = {"format": fmt, **({"compression": compression} if compression else {})}
                        response = client.get(f"/api/models/{model_id}/export", params=params)
                        if response.status_code != 202:
                            raise RuntimeError(f"export {variant}: {response.status_code} {response.text[:200]}")
                        return response.json()["job_id"]
                    return submit

                with memory:
                    jobs.append(run_job(client, prefect_api, "training (first after start)", train))
                    active_id = start_line(client, settings, project_id, models[0], scratch, line_fps)
                    for kind in SEQUENCE:
                        submit = {"snapshot": snapshot, "training": train}.get(kind) or export(kind.split(":")[1])
                        jobs.append(run_job(client, prefect_api, kind, submit))
                    line = client.get(f"/api/active-pipelines/{active_id}").json()
                    client.delete(f"/api/active-pipelines/{active_id}")
        finally:
            stack.stop()
    return {"mode": mode, "jobs": jobs, "idle_mb": idle_mb, "peak_mb": memory.peak_mb,
            "online_after_s": online_after_s, "line_status": line.get("status"), "load": load()}


def print_results(results: list[dict]) -> None:
    jobs = len(results[0]["jobs"])
    tail, _ = percentile_or_max([0.0] * jobs, 95)
    print(f"\n{os.cpu_count()} CPUs; submit→running per job (s), {jobs} jobs per mode; target p95 ≤ "
          f"{TARGET_P95_S:.0f} s; baseline: the cold mode (Prefect's own engine per run) of the same run; "
          f"p50 and p95 are nearest-rank percentiles" + (f" ({jobs} jobs cannot resolve p95: the maximum is "
                                                          "reported and judged instead)" if tail == "max" else "")
          + "\n")
    kinds = [job["kind"] for job in results[0]["jobs"]]
    print(" | ".join(["job", *(result["mode"] for result in results)]))
    print(" | ".join("---" for _ in range(len(results) + 1)))
    for index, kind in enumerate(kinds):
        print(" | ".join([kind, *(f"{job['running_s']:.2f} ({job['created_s']:.2f} / {job['taken_s']:.2f})"
                                  for job in (result["jobs"][index] for result in results))]))
    print("\n(in brackets: submit→flow run created by the API / submit→taken by a worker; the rest is starting"
          " the flow process and its engine)")
    print()
    header = ["mode", "p50 s", f"{tail} s", "max s", "meets target", "worker online after s",
              "idle PSS MB", "peak PSS MB", "sum submit→completed s", "line", "load"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for result in results:
        running = [job["running_s"] for job in result["jobs"]]
        _, p95 = percentile_or_max(running, 95)
        print(" | ".join([
            result["mode"], f"{percentile(running, 50):.2f}", f"{p95:.2f}", f"{max(running):.2f}",
            "yes" if p95 <= TARGET_P95_S else "NO", f"{result['online_after_s']:.1f}", f"{result['idle_mb']:.0f}",
            f"{result['peak_mb']:.0f}", f"{sum(job['completed_s'] for job in result['jobs']):.1f}",
            str(result["line_status"]), result["load"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["fork", "spare", "cold"], choices=["fork", "spare", "cold"])
    parser.add_argument("--line-fps", type=float, default=10.0, help="the live pipeline's pace (a camera at 10 fps)")
    args = parser.parse_args()
    results = []
    for mode in args.modes:
        print(f"{mode}: starting a platform and running {len(SEQUENCE) + 1} jobs...", file=sys.stderr)
        results.append(measure_mode(mode, args.line_fps))
    print_results(results)


if __name__ == "__main__":
    main()
