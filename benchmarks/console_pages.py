"""Every console page's HTML with 100,000 media in the project, over HTTP against a real uvicorn process.

The project is filled the way `api_scale.py` fills it (its `seed_rows`: bulk-inserted rows, one stored
blob and thumbnail each, 50 other projects, every 10th image anomalous); then, as the platform's split
rule leaves them, the anomalous images and another tenth go to `eval` (20 %), the newest 1,000 become
frames a line collected and left `unlabelled` (the review queue), and a champion model and 500 settled
jobs are written, as a long-running installation has them; the models pages get a snapshot of the whole
project and two models with evaluation records of its 20,000 eval items, and a failed one. Prints p50/p95
per page (target p95 <= 200 ms) next to the same page of a 20-media project of the same server and run (the
baseline), and the machine's load.

    .venv/bin/python benchmarks/console_pages.py                       # SQLite
    .venv/bin/python benchmarks/console_pages.py --database postgresql # 127.0.0.1:5432, own database
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_scale import database, seed_rows, timed_gets  # noqa: E402
from benchmarks.support import load, percentile, percentile_or_max, start_process, stop_process, wait_http  # noqa: E402
from tests.network import free_port  # noqa: E402

TARGET_P95_MS = 200.0


def seed_console_state(url: str, big: uuid.UUID, small: uuid.UUID, unlabelled: int, jobs: int
                       ) -> tuple[uuid.UUID, uuid.UUID]:
    """Unlabelled media for the review queue, a champion per project and settled jobs; returns a media id of
    each project."""
    from sqlalchemy import insert, or_, select, text, update

    from infra.database.engine import get_engine
    from infra.database.models import JobRecord, Media, Model

    engine = get_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for project in (big, small):
            connection.execute(update(Media).where(Media.project_id == project, or_(
                Media.label == "anomalous", Media.filename.like("%1.png"))).values(split="eval"))
            newest = select(Media.id).where(Media.project_id == project).order_by(Media.created_at.desc())
            ids = list(connection.scalars(newest.limit(unlabelled if project == big else 5)))
            connection.execute(update(Media).where(Media.id.in_(ids)).values(label="unlabelled", origin="collected",
                                                                            score=0.5))
            connection.execute(insert(Model).values(
                id=uuid.uuid4(), project_id=project, name="champion", architecture="padim", status="ready",
                champion=True, metrics={"image_auroc": 0.93}, parameters={}, created_at=now, updated_at=now))
        rows = [{"id": uuid.uuid4(), "project_id": big if index % 2 else small, "type": "training",
                 "status": "completed", "message": None, "progress": 1.0, "metrics": {"image_auroc": 0.9},
                 "created_at": now - timedelta(minutes=index), "started_at": now - timedelta(minutes=index),
                 "finished_at": now - timedelta(minutes=index) + timedelta(seconds=40), "settled": True,
                 "synced_at": now} for index in range(jobs)]
        connection.execute(insert(JobRecord), rows)
        first = [connection.scalar(select(Media.id).where(Media.project_id == project).limit(1))
                 for project in (big, small)]
    if engine.dialect.name == "postgresql":  # what autovacuum does after the updates (as seed_rows does)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    return first[0], first[1]


def seed_models(url: str, store: Any, project: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """A ready snapshot of every media item, two ready models on it with evaluation records of its whole eval set
    (20,000 items at 100,000 media), and a failed one, as trainings leave them; returns the two ready ones."""
    import random

    from sqlalchemy import insert, select

    from infra.database.engine import get_engine
    from infra.database.models import Media, Model, Snapshot, SnapshotItem
    from infra.evaluation import EvaluationRecord, ScoredItem, save_record

    engine = get_engine(url)
    now = datetime.now(UTC)
    snapshot = uuid.uuid4()
    ready = [uuid.uuid4(), uuid.uuid4()]
    with engine.begin() as connection:
        connection.execute(insert(Snapshot).values(id=snapshot, project_id=project, name="training set",
                                                   status="ready", created_at=now))
        media = connection.execute(select(Media.id, Media.filename, Media.label, Media.sha256, Media.split)
                                   .where(Media.project_id == project, Media.label != "unlabelled")).all()
        for start in range(0, len(media), 2000):
            connection.execute(insert(SnapshotItem).values([
                {"snapshot_id": snapshot, "media_id": row.id, "filename": row.filename, "label": row.label,
                 "sha256": row.sha256, "split": row.split} for row in media[start:start + 2000]]))
        items = connection.execute(select(SnapshotItem.id, SnapshotItem.media_id, SnapshotItem.filename,
                                          SnapshotItem.label).where(
            SnapshotItem.snapshot_id == snapshot,
            (SnapshotItem.split == "eval") | (SnapshotItem.label == "anomalous"))).all()
        for number, model_id in enumerate(ready):
            connection.execute(insert(Model).values(
                id=model_id, project_id=project, name=f"candidate {number + 1}", architecture="padim",
                status="ready", snapshot_id=snapshot, parameters={"backbone": "mobilenetv2_100"},
                metrics={"image_auroc": 0.9 + number / 100, "image_f1": 0.8, "threshold": 0.5},
                created_at=now, updated_at=now))
            rng = random.Random(number)
            scored = [ScoredItem(item.id, item.media_id, item.filename, item.label,
                                 min(1.0, max(0.0, rng.gauss(0.7 if item.label == "anomalous" else 0.3, 0.15))))
                      for item in items]
            save_record(store, model_id, EvaluationRecord(snapshot, 0.5, scored))
        connection.execute(insert(Model).values(
            id=uuid.uuid4(), project_id=project, name="broken", architecture="patchcore", status="failed",
            error="out of memory", parameters={}, metrics={}, created_at=now, updated_at=now))
    return ready[0], ready[1]


def model_pages(project: uuid.UUID, first: uuid.UUID, second: uuid.UUID) -> list[tuple[str, str]]:
    return [
        ("models", f"/ui/projects/{project}/models"),
        ("model detail (evaluation drawn)", f"/ui/projects/{project}/models/{first}"),
        ("models compared", f"/ui/projects/{project}/models/compare?ids={first},{second}"),
        ("training page", f"/ui/projects/{project}/train?architecture=padim"),
    ]


def pages(project: uuid.UUID, media_id: uuid.UUID, deep_page: int) -> list[tuple[str, str]]:
    return [
        ("projects", "/ui/"),
        ("dataset page 1", f"/ui/projects/{project}"),
        (f"dataset page {deep_page:,}", f"/ui/projects/{project}?page={deep_page}"),
        ("dataset, label anomalous", f"/ui/projects/{project}?label=anomalous"),
        ("dataset, split eval", f"/ui/projects/{project}?split=eval"),
        ("dataset, collected by lines", f"/ui/projects/{project}?origin=collected"),
        ("media preview", f"/ui/media/{media_id}"),
        ("review queue", f"/ui/projects/{project}/review"),
        ("jobs", "/ui/jobs"),
    ]


def seed_line(url: str, project: uuid.UUID) -> uuid.UUID:
    """A running line (source, sink, pipeline and its active row with a second's metrics) in `project`."""
    from sqlalchemy import insert

    from infra.database.engine import get_engine
    from infra.database.models import ActivePipeline, Pipeline, Sink, Source

    now = datetime.now(UTC)
    ids = {name: uuid.uuid4() for name in ("source", "sink", "line", "run")}
    stamps = {"created_at": now, "updated_at": now}
    metrics = {"frames_processed": 12_345, "fps": 9.8, "latency_ms_p50": 41.0, "latency_ms_p95": 63.0,
               "recent_scores": [round(0.1 + (index % 17) / 40, 3) for index in range(120)]}
    with get_engine(url).begin() as connection:
        connection.execute(insert(Source).values(id=ids["source"], project_id=project, type="video_file",
                                                 name="Gate video", config={"path": "/data/line/gate.avi"}, **stamps))
        connection.execute(insert(Sink).values(id=ids["sink"], project_id=project, type="webhook", name="Alerts",
                                               config={"url": "http://127.0.0.1:9/hook"}, **stamps))
        connection.execute(insert(Pipeline).values(
            id=ids["line"], project_id=project, name="Gate camera", follow_champion=True, source_id=ids["source"],
            sink_id=ids["sink"], config={"threshold": 0.5, "fps": 10.0, "data_collection": {"mode": "uncertain"}},
            **stamps))
        connection.execute(insert(ActivePipeline).values(
            id=ids["run"], pipeline_id=ids["line"], status="running", metrics=metrics, created_at=now,
            started_at=now, heartbeat_at=now))
    return ids["line"]


def line_pages(project: uuid.UUID, line: uuid.UUID) -> list[tuple[str, str]]:
    """The lines and schedule pages (the schedule's Prefect is unreachable here: the page's short wait counts)."""
    return [
        ("lines", f"/ui/projects/{project}/lines"),
        ("line view", f"/ui/projects/{project}/lines/{line}"),
        ("line edit form", f"/ui/projects/{project}/lines/{line}/edit"),
        ("schedule (Prefect unreachable)", f"/ui/projects/{project}/schedule"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--media", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--requests", type=int, default=100, help="sequential requests per page")
    args = parser.parse_args()

    from infra.settings import Settings
    from infra.storage import build_store

    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp, database(args.database, Path(tmp)) as url:
        data_dir = Path(tmp) / "data"
        big, small, *_ = seed_rows(url, build_store(Settings(data_dir=data_dir, database_url=url)), args.media,
                                  args.projects)
        media_big, media_small = seed_console_state(url, big, small, 1000, args.jobs)
        store = build_store(Settings(data_dir=data_dir, database_url=url))
        models_big, models_small = seed_models(url, store, big), seed_models(url, store, small)
        line_big, line_small = seed_line(url, big), seed_line(url, small)
        port = free_port()
        env = {**os.environ, "INSPECT_DATA_DIR": str(data_dir), "INSPECT_DATABASE_URL": url,
               # Prefect is not needed: every job is settled, and the pages must not wait for it.
               "INSPECT_PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api", "INSPECT_JOB_INDEX_POLL_S": "0",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                            os.environ.get("PYTHONPATH")]))}
        api = start_process([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"], env, Path(tmp) / "api.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/api/health", process=api)
            deep = max(1, args.media // 48 - 20)
            measured = list(zip(pages(big, media_big, deep) + model_pages(big, *models_big) + line_pages(big, line_big),
                                pages(small, media_small, 1) + model_pages(small, *models_small)
                                + line_pages(small, line_small), strict=True))
            print(f"\n{args.database}: {args.media:,} media (1,000 unlabelled), {args.projects + 2} projects, "
                  f"{args.jobs} jobs, {os.cpu_count()} CPUs; target p95 <= {TARGET_P95_MS:.0f} ms; "
                  f"{args.requests} sequential requests per page; nearest-rank percentiles (below 20 requests "
                  f"the p95 column is the maximum and says so)\n")
            tail = percentile_or_max([0.0] * args.requests, 95)[0]
            header = ("page", "p50 ms", f"{tail} ms", f"baseline (20 media) p50 / {tail} ms", "load", "met")
            print(" | ".join(header))
            print(" | ".join("---" for _ in header))
            for (name, path), (_, baseline_path) in measured:
                for warm in (path, baseline_path):
                    timed_gets(base, warm, 3)
                baseline = timed_gets(base, baseline_path, args.requests)
                samples = timed_gets(base, path, args.requests)
                _, p95 = percentile_or_max(samples, 95)
                print(" | ".join([name, f"{percentile(samples, 50):.1f}", f"{p95:.1f}",
                                  f"{percentile(baseline, 50):.1f} / {percentile_or_max(baseline, 95)[1]:.1f}", load(),
                                  "yes" if p95 <= TARGET_P95_MS else "NO"]), flush=True)
        finally:
            stop_process(api)


if __name__ == "__main__":
    main()
