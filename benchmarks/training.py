"""Training through the platform (a Prefect job) against anomalib's plain `Engine.fit` in one process.

Starts the platform's stack (Prefect server + worker, MLflow) on free ports and a temporary data
dir, uploads an MTD slice through the API, snapshots it, and per architecture:

- **platform**: `POST /projects/{id}/train` once the worker's spare engine is ready (steady state;
  INSPECT_WORKER_START=cold measures cold engine processes), polled every 0.1 s: submit→running latency,
  submit→completed wall time, the fit/test/export times the job reports, image AUROC;
- **plain**: a fresh Python process *without* the worker's allocator (no tcmalloc preload) on the
  very same dataset folder (same file names, same seeded split, same model construction), that
  calls `Engine.fit` and `Engine.test` — anomalib's own coreset selection included.

Prints a table. Defaults: the first 60 MT_Free tiles + 10 MT_Blowhole + 10 MT_Crack, PaDiM and
PatchCore on mobilenetv2_100 (layers blocks.2 + blocks.4).

    .venv/bin/python benchmarks/training.py
    .venv/bin/python benchmarks/training.py --normal 200 --anomalous 60 --architectures patchcore
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.network import free_port  # noqa: E402

MTD_DIR = REPO_ROOT.parent / "shared" / "data" / "mtd"


def plain_fit(dataset: Path, architecture: str, parameters: dict, data_dir: Path) -> dict:
    """Runs in the child process: anomalib's Engine.fit/test, nothing of the platform's speed-ups."""
    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    from flows.training.build import build_model
    from flows.training.dataset import build_datamodule
    from infra.anomaly.backbones import activate_hub_cache
    from infra.anomaly.catalog import validate_parameters

    cache_dir = activate_hub_cache(data_dir)  # offline ImageNet weights, as the platform uses
    resolved = validate_parameters(architecture, parameters, cache_dir=cache_dir)
    seed_everything(42, workers=True, verbose=False)  # the trainer's seed and split
    datamodule = build_datamodule(dataset, train_batch_size=8, eval_batch_size=8, seed=42)
    model = build_model(architecture, resolved)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(max_epochs=int(resolved["max_epochs"]), accelerator="cpu", devices=1, logger=False,
                        default_root_dir=tmp, enable_progress_bar=False, enable_model_summary=False)
        started = time.perf_counter()
        engine.fit(model=model, datamodule=datamodule)
        fit_s = time.perf_counter() - started
        results = engine.test(model=model, datamodule=datamodule, verbose=False)[0]
    return {"fit_s": fit_s, "image_auroc": float(results["image_AUROC"])}


def run_plain(dataset: Path, architecture: str, parameters: dict, data_dir: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("LD_PRELOAD", "TBB_ENABLE_SANITIZERS")}
    out = subprocess.run([sys.executable, __file__, "--plain", architecture, "--dataset", str(dataset),
                          "--parameters", json.dumps(parameters), "--data-dir", str(data_dir)],
                         env=env, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"plain fit of {architecture} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def platform_job(client, project_id: str, snapshot_id: str, architecture: str, parameters: dict) -> dict:
    submitted = time.monotonic()
    response = client.post(f"/api/projects/{project_id}/train", json={
        "model_name": f"bench {architecture}", "architecture": architecture, "parameters": parameters,
        "snapshot_id": snapshot_id})
    response.raise_for_status()
    job_id = response.json()["job_id"]
    running_at = None
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        now = time.monotonic()
        if running_at is None and job["status"] != "pending":
            running_at = now
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.1)
    if job["status"] != "completed":
        raise RuntimeError(f"{architecture} job ended {job['status']}: {job['error']}")
    metrics = job["metrics"]
    return {"submit_to_running_s": running_at - submitted, "submit_to_completed_s": now - submitted,
            "fit_s": metrics["time_fit_s"], "test_s": metrics["time_test_s"], "export_s": metrics["time_export_s"],
            "image_auroc": metrics["image_auroc"],
            "phases": {key.removeprefix("time_").removesuffix("_s"): value for key, value in metrics.items()
                       if key.startswith("time_") and key.endswith("_s") and key not in
                       ("time_fit_s", "time_test_s", "time_export_s")}}


def wait_until_worker_idle(worker_pid: int, timeout: float = 180) -> None:
    """Until the worker's warm engine (fork server or spare) has finished its imports, as in steady use."""
    import psutil

    from infra.orchestration.engine_launchers import engine_processes

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spares = engine_processes(worker_pid)
        try:
            if len(spares) == 1 and spares[0].cpu_percent(interval=1.0) < 5:
                return
        except psutil.Error:
            pass
        time.sleep(0.5)
    print("warning: the worker's warm engine did not settle; this job may start cold", file=sys.stderr)


def mtd_files(normal: int, anomalous: int) -> tuple[list[Path], list[Path]]:
    good = sorted((MTD_DIR / "MT_Free" / "Imgs").glob("*.jpg"))[:normal]
    half = anomalous // 2
    bad = (sorted((MTD_DIR / "MT_Blowhole" / "Imgs").glob("*.jpg"))[:anomalous - half]
           + sorted((MTD_DIR / "MT_Crack" / "Imgs").glob("*.jpg"))[:half])
    return good, bad


@contextmanager
def platform_project(files: dict[str, list[Path]], before_snapshot: Callable[[Any, str], None] | None = None
                     ) -> Iterator[tuple[Any, str, str, Any, Path]]:
    """The whole stack on free ports and a temporary data dir, a project holding ``files`` (label -> paths)
    uploaded through the API, and its snapshot (taken after ``before_snapshot(client, project_id)``, when
    given): yields (API client, project id, snapshot id, stack, the snapshot's dataset folder exactly as
    the training flow writes it)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from flows.training.dataset import materialise
    from flows.training.flow import dataset_items
    from infra.anomaly.catalog import architecture_names
    from infra.database.engine import session_scope
    from infra.settings import Settings
    from infra.storage import blob_key, build_store
    from infra.supervisor import Stack

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", prefect_port=free_port(), mlflow_port=free_port())
        stack = Stack(settings)
        started = time.monotonic()
        stack.start()
        architecture_names()  # `serve` loads the model catalog while the stack starts
        print(f"stack ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        try:
            with TestClient(create_app(settings, health_checks=stack.health_checks())) as client:
                project_id = client.post("/api/projects", json={"name": "benchmark"}).json()["id"]
                for label, paths in files.items():
                    for start in range(0, len(paths), 50):  # a few requests, each well under the upload limit
                        upload = [("files", (path.name, path.read_bytes(), _media_type(path)))
                                  for path in paths[start:start + 50]]
                        client.post(f"/api/projects/{project_id}/media", files=upload,
                                    data={"label": label}).raise_for_status()
                if before_snapshot is not None:
                    before_snapshot(client, project_id)
                snapshot = client.post(f"/api/projects/{project_id}/snapshots", json={"name": "bench"}).json()
                while client.get(f"/api/snapshots/{snapshot['id']}").json()["status"] == "pending":
                    time.sleep(0.2)
                # A plain run gets the very folder the training flow builds from the snapshot.
                store = build_store(settings)
                with session_scope(settings.resolved_database_url) as session:
                    items = dataset_items(session, uuid.UUID(snapshot["id"]))
                dataset = Path(tmp) / "dataset"
                materialise(items, lambda sha: store.get(blob_key(sha)), dataset)
                yield client, project_id, snapshot["id"], stack, dataset
        finally:
            stack.stop()


def _media_type(path: Path) -> str:
    return "image/png" if path.suffix.lower() == ".png" else "image/jpeg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--normal", type=int, default=60)
    parser.add_argument("--anomalous", type=int, default=20)
    parser.add_argument("--architectures", nargs="+", default=["padim", "patchcore"])
    parser.add_argument("--backbone", default="mobilenetv2_100")
    parser.add_argument("--layers", nargs="+", default=["blocks.2", "blocks.4"])
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parameters", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain_fit(args.dataset, args.plain, json.loads(args.parameters), args.data_dir)))
        return

    good, bad = mtd_files(args.normal, args.anomalous)
    rows = []
    with platform_project({"normal": good, "anomalous": bad}) as (client, project_id, snapshot_id, stack, dataset):
        for architecture in args.architectures:
            parameters = {"backbone": args.backbone, "layers": args.layers}
            if stack.settings.worker_start != "cold":
                wait_until_worker_idle(stack.workers["training"].pid)
            print(f"{architecture}: platform job...", file=sys.stderr)
            platform = platform_job(client, project_id, snapshot_id, architecture, parameters)
            print(f"{architecture}: plain Engine.fit...", file=sys.stderr)
            plain = run_plain(dataset, architecture, parameters, stack.settings.resolved_data_dir)
            rows.append((architecture, plain, platform))

    print(f"\nMTD slice: {len(good)} normal + {len(bad)} anomalous tiles; backbone {args.backbone} "
          f"{'+'.join(args.layers)}; {os.cpu_count()} CPUs; baseline: plain anomalib Engine.fit on the same "
          f"images in the same run; load {os.getloadavg()[0]:.2f}\n")
    header = ("architecture", "plain fit s", "job fit s", "fit speed-up", "plain AUROC", "job AUROC",
              "submit→running s", "submit→completed s", "job − fit s", "job − fit/test/export s")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for architecture, plain, job in rows:
        work = job["fit_s"] + job["test_s"] + job["export_s"]
        print(" | ".join([
            architecture, f"{plain['fit_s']:.1f}", f"{job['fit_s']:.1f}", f"{plain['fit_s'] / job['fit_s']:.1f}x",
            f"{plain['image_auroc']:.4f}", f"{job['image_auroc']:.4f}", f"{job['submit_to_running_s']:.1f}",
            f"{job['submit_to_completed_s']:.1f}", f"{job['submit_to_completed_s'] - job['fit_s']:.1f}",
            f"{job['submit_to_completed_s'] - work:.1f}"]))
    print("\nInside the job (s): " + "; ".join(
        f"{architecture}: " + ", ".join(f"{name} {value:.1f}" for name, value in job["phases"].items())
        for architecture, _, job in rows))


if __name__ == "__main__":
    main()
