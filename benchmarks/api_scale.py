"""List endpoints, uploads and project delete at scale, over HTTP against a real uvicorn process.

Builds a project with 100,000 media (rows bulk-inserted, one stored blob and thumbnail each), one
with 1,000 media, 50 other projects, and 500 finished jobs of that project in a Prefect server (flow runs with their
progress and metrics artifacts, as the flows write them) before the API starts, so the API's jobs
index learns them as it would an existing installation's history: through its poller's first pass.
Then, against `uvicorn api.app:create_app`:

- p50/p99 of media page 1, a deep page (offset = media - 1,000), `GET /projects` and the project's
  jobs list, sequential and with 8 concurrent clients; the baseline is page 1 of a 20-media
  project in the same server and run;
- upload rate of small PNGs (images/s, 20 per request) into the 100,000-media project against the
  1,000-media project (the baseline; two alternating rounds each, new images every time): each upload
  looks for a duplicate of its bytes in the project (infra/splits.py), which must stay an index seek.
  Target: the rate at 100,000 media is at least 80 % of the rate at 1,000;
- `DELETE` of the big project: wall time, and whether any of its blobs or thumbnails remain.

    .venv/bin/python benchmarks/api_scale.py                       # SQLite
    .venv/bin/python benchmarks/api_scale.py --database postgresql # 127.0.0.1:5432, own database
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.support import (  # noqa: E402
    load,
    percentile,
    prefect_server,
    start_process,
    stop_process,
    wait_http,
    wait_until,
)
from tests.network import free_port  # noqa: E402

TARGET_SEQUENTIAL_MS = 50.0
TARGET_CONCURRENT_MS = 150.0
TARGET_UPLOAD_RATIO = 0.8
BASELINE_MEDIA = 1000


@contextmanager
def database(kind: str, data_dir: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file, or a throwaway PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'inspect.db'}"
        return
    import psycopg
    from psycopg import sql

    name = f"perf_bench_{uuid.uuid4().hex[:10]}"
    for user in ("postgres", "root"):
        admin = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            break
        except psycopg.OperationalError:
            continue
    else:
        raise SystemExit("no PostgreSQL on 127.0.0.1:5432 with trust auth for postgres or root")
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}"
    finally:
        from infra.database.engine import get_engine

        get_engine(f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}").dispose()
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def seed_rows(url: str, store, media_count: int, other_projects: int
              ) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, list[str]]:
    """Bulk-insert the big project, a 20-media baseline project, a 1,000-media project (the uploads'
    baseline) and other projects; store each blob."""
    from sqlalchemy import insert, text

    from infra.blob_gc import thumbnail_key
    from infra.database.engine import get_engine
    from infra.database.migrate import upgrade
    from infra.database.models import Media, Project
    from infra.storage import blob_key

    upgrade(url)
    engine = get_engine(url)
    now = datetime.now(UTC)
    big, small, thousand = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    projects = [{"id": big, "name": "100k media", "created_at": now, "updated_at": now},
                {"id": small, "name": "baseline", "created_at": now, "updated_at": now},
                {"id": thousand, "name": "1k media", "created_at": now, "updated_at": now}]
    projects += [{"id": uuid.uuid4(), "name": f"project {index}", "created_at": now - timedelta(minutes=index),
                  "updated_at": now} for index in range(other_projects)]
    hashes: list[str] = []
    started = time.monotonic()
    with engine.begin() as connection:
        connection.execute(insert(Project), projects)
        for project_id, count in ((big, media_count), (small, 20), (thousand, BASELINE_MEDIA)):
            rows = []
            for index in range(count):
                data = f"{project_id}-{index}".encode()
                digest = hashlib.sha256(data).hexdigest()
                store.put(blob_key(digest), data)
                store.put(thumbnail_key(digest), data)
                if project_id == big:
                    hashes.append(digest)
                created = now - timedelta(days=30) + timedelta(seconds=index * 10)
                rows.append({"id": uuid.uuid4(), "project_id": project_id, "filename": f"image_{index:06d}.png",
                             "label": "normal" if index % 10 else "anomalous", "sha256": digest,
                             "content_type": "image/png", "size_bytes": len(data), "width": 64, "height": 48,
                             "created_at": created, "updated_at": created})
                if len(rows) == 2000:
                    # One multi-row INSERT: PostgreSQL's count trigger then runs once per statement.
                    connection.execute(insert(Media).values(rows))
                    rows = []
            if rows:
                connection.execute(insert(Media).values(rows))
    if engine.dialect.name == "postgresql":  # what autovacuum does shortly after a bulk load
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    print(f"seeded {media_count + 20 + BASELINE_MEDIA} media rows and blobs, {len(projects)} projects in "
          f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    return big, small, thousand, hashes


def seed_jobs(api_url: str, project_id: uuid.UUID, count: int) -> float:
    """Finished flow runs tagged as the project's jobs, each with a progress and a metrics artifact."""
    import json

    os.environ["PREFECT_API_URL"] = api_url  # else Prefect starts a temporary server of its own

    from prefect import flow
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.states import Completed

    @flow(name="bench-job")
    def bench_job() -> None:
        return None

    started = time.monotonic()
    with SyncPrefectClient(api_url) as client:
        for index in range(count):
            job_type = ("training", "export", "snapshot")[index % 3]
            run = client.create_flow_run(bench_job, tags=[f"project:{project_id}", f"job:{job_type}"],
                                         state=Completed())
            client.create_artifact(ArtifactCreate(type="progress", data=100.0, flow_run_id=run.id))
            client.create_artifact(ArtifactCreate(type="table", flow_run_id=run.id, data=json.dumps(
                [{"stage": "done", "image_auroc": 0.9 + index / 10_000, "fit_s": 12.5}])))
    print(f"seeded {count} finished jobs in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return time.monotonic()


def wait_for_jobs_index(base: str, project_id: uuid.UUID, jobs: int, seeded_at: float) -> None:
    """Until the API's poller has listed every seeded job, and they have all settled (final rows)."""
    from infra.orchestration.jobs import SETTLED_AFTER_S

    started = time.monotonic()
    oldest = f"{base}/api/projects/{project_id}/jobs?limit=1&offset={jobs - 1}"
    wait_until(lambda: httpx.get(oldest, timeout=30).json(), 300, "the jobs index to list the seeded jobs", 0.5)
    # A job is settled once read SETTLED_AFTER_S after it ended; the poller re-reads recent ends for a while.
    time.sleep(max(0.0, seeded_at + SETTLED_AFTER_S + 7.0 - time.monotonic()))
    print(f"jobs index listed {jobs} jobs {time.monotonic() - started:.1f} s after the API answered",
          file=sys.stderr)


def timed_gets(base: str, path: str, requests: int) -> list[float]:
    """Milliseconds per GET over one keep-alive connection; any non-200 aborts the benchmark."""
    samples = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
    return samples


def concurrent_gets(base: str, path: str, clients: int, requests_each: int) -> list[float]:
    samples: list[float] = []
    errors: list[BaseException] = []

    def client_loop() -> None:
        try:
            samples.extend(timed_gets(base, path, requests_each))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return samples


def small_pngs(count: int, seed: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


def upload_rate(base: str, project_id: uuid.UUID, images: list[bytes], per_request: int) -> float:
    with httpx.Client(base_url=base, timeout=120) as client:
        started = time.perf_counter()
        for start in range(0, len(images), per_request):
            files = [("files", (f"up_{start + index}.png", data, "image/png"))
                     for index, data in enumerate(images[start:start + per_request])]
            response = client.post(f"/api/projects/{project_id}/media", files=files, data={"label": "normal"})
            if response.status_code != 201:
                raise RuntimeError(f"upload: {response.status_code} {response.text[:300]}")
        return len(images) / (time.perf_counter() - started)


def upload_rates(base: str, projects: dict[int, uuid.UUID], uploads: int) -> dict[int, list[tuple[float, str]]]:
    """Images/s into each project (keyed by its media count), two rounds each, alternating; with the load."""
    rates: dict[int, list[tuple[float, str]]] = {count: [] for count in projects}
    for round_index in range(2):
        for offset, (count, project_id) in enumerate(projects.items()):
            images = small_pngs(uploads, seed=1 + 2 * round_index + offset)
            rates[count].append((upload_rate(base, project_id, images, 20), load()))
    return rates


def print_upload_rates(args: argparse.Namespace, rates: dict[int, list[tuple[float, str]]]) -> None:
    baseline = sum(rate for rate, _ in rates[BASELINE_MEDIA]) / len(rates[BASELINE_MEDIA])
    print(f"\nupload rate, {args.uploads} new PNGs of 64x48 per round, 20 per request; baseline: the "
          f"{BASELINE_MEDIA:,}-media project; target >= {TARGET_UPLOAD_RATIO:.0%} of it\n")
    print("project | round 1 images/s (load) | round 2 images/s (load) | mean | / baseline | met")
    print(" | ".join("---" for _ in range(6)))
    for count, runs in rates.items():
        mean = sum(rate for rate, _ in runs) / len(runs)
        cells = [f"{rate:.1f} ({at_load})" for rate, at_load in runs]
        print(" | ".join([f"{count:,} media", *cells, f"{mean:.1f}", f"{mean / baseline:.2f}",
                          "yes" if mean >= TARGET_UPLOAD_RATIO * baseline else "NO"]), flush=True)


def remaining_files(storage_root: Path, hashes: set[str]) -> int:
    return sum(1 for _, _, files in os.walk(storage_root) for name in files
               if name.removesuffix(".png") in hashes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--media", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per endpoint")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--uploads", type=int, default=200)
    args = parser.parse_args()

    from infra.settings import Settings
    from infra.storage import build_store

    with tempfile.TemporaryDirectory(prefix="bench-api-scale-") as tmp, \
            database(args.database, Path(tmp)) as url:
        data_dir = Path(tmp) / "data"
        settings = Settings(data_dir=data_dir, database_url=url)
        store = build_store(settings)
        big, small, thousand, hashes = seed_rows(url, store, args.media, args.projects)
        prefect, prefect_api = prefect_server(Path(tmp) / "prefect", free_port())
        api = None
        try:
            seeded_at = seed_jobs(prefect_api, big, args.jobs)
            port = free_port()
            env = {**os.environ, "INSPECT_DATA_DIR": str(data_dir), "INSPECT_DATABASE_URL": url,
                   "INSPECT_PREFECT_API_URL": prefect_api, "PREFECT_API_URL": prefect_api,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                os.environ.get("PYTHONPATH")]))}
            api = start_process([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
                                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                env, Path(tmp) / "api.log")
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/api/health", process=api)
            wait_for_jobs_index(base, big, args.jobs, seeded_at)
            deep = max(0, args.media - 1000)
            endpoints = [
                ("baseline: page 1 of 20 media", f"/api/projects/{small}/media?limit=20"),
                (f"media page 1 ({args.media:,})", f"/api/projects/{big}/media?limit=20"),
                (f"media offset {deep:,}", f"/api/projects/{big}/media?limit=20&offset={deep}"),
                (f"GET /projects ({args.projects + 2})", "/api/projects"),
                (f"jobs list ({args.jobs} finished)", f"/api/projects/{big}/jobs"),
            ]
            rows = []
            for name, path in endpoints:
                timed_gets(base, path, 5)  # warm caches and connections
                sequential = timed_gets(base, path, args.requests)
                load_seq = load()
                concurrent = concurrent_gets(base, path, args.clients, max(20, args.requests // args.clients))
                rows.append((name, sequential, load_seq, concurrent, load()))
            print_latencies(args, rows)

            print_upload_rates(args, upload_rates(base, {BASELINE_MEDIA: thousand, args.media: big}, args.uploads))

            started = time.perf_counter()
            try:
                outcome = str(httpx.delete(f"{base}/api/projects/{big}", timeout=1800).status_code)
            except httpx.HTTPError as error:
                outcome = f"{type(error).__name__}"
            delete_s = time.perf_counter() - started
            left = remaining_files(data_dir / "storage", set(hashes))
            print(f"delete project with {args.media:,} media: {outcome} in {delete_s:.1f} s (target < 60 s; "
                  f"load {load()}); its blobs/thumbnails left in storage: {left}", flush=True)
        finally:
            if api is not None:
                stop_process(api)
            stop_process(prefect)


def print_latencies(args: argparse.Namespace, rows: list[tuple]) -> None:
    baseline_p99 = percentile(rows[0][1], 99)
    print(f"\n{args.database}: {args.media:,} media, {args.jobs} jobs, {os.cpu_count()} CPUs; p50/p99 are "
          f"nearest-rank percentiles of {args.requests} sequential and "
          f"{args.clients * max(20, args.requests // args.clients)} concurrent requests; "
          f"targets p99 <= {TARGET_SEQUENTIAL_MS:.0f} ms sequential, <= {TARGET_CONCURRENT_MS:.0f} ms with "
          f"{args.clients} clients\n")
    header = ("endpoint", "seq p50 ms", "seq p99 ms", "p99 / baseline", "load", f"{args.clients} clients p50 ms",
              f"{args.clients} clients p99 ms", "load", "met")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, sequential, load_seq, concurrent, load_conc in rows:
        seq_p99, conc_p99 = percentile(sequential, 99), percentile(concurrent, 99)
        met = seq_p99 <= TARGET_SEQUENTIAL_MS and conc_p99 <= TARGET_CONCURRENT_MS
        print(" | ".join([name, f"{percentile(sequential, 50):.1f}", f"{seq_p99:.1f}",
                          f"{seq_p99 / baseline_p99:.1f}x", load_seq, f"{percentile(concurrent, 50):.1f}",
                          f"{conc_p99:.1f}", load_conc, "yes" if met else "NO"]), flush=True)


if __name__ == "__main__":
    main()
