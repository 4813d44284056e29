"""Data collection on a live pipeline run by the real `inference` worker (looping MTD video, tiny PaDiM).

One run walks through every mode by PATCHing the pipeline's config while it runs: `interval`
(one frame per interval, labelled by the threshold), `uncertain` (every frame inside the band,
unlabelled), `confident_normal` (low scores only, at most one per interval) and `off`. Each
collected frame is project media with `origin: "collected"`, the pipeline and its score, and the
pipeline's metrics count it. The cap and failures are covered in tests/integration and unit tests.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infra.model_files import openvino_prefix, upload_folder
from tests.integration.pipeline_support import create, insert_model
from tests.platform_fixtures import wait_for

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 90  # worker poll + flow process start + model compile, on 2 busy cores
THRESHOLD = 0.5


def collected(client: TestClient, project_id: str, **filters: str) -> list[dict]:
    params = {"origin": "collected", "limit": 1000, **filters}
    return client.get(f"/api/projects/{project_id}/media", params=params).json()["items"]


def metrics(client: TestClient, active_id: str) -> dict:
    return client.get(f"/api/active-pipelines/{active_id}").json()["metrics"]


def collect(client: TestClient, pipeline_id: str, **settings: object) -> float:
    """Switch the running pipeline's collection; returns when it was asked (monotonic seconds)."""
    asked = time.monotonic()
    response = client.patch(f"/api/pipelines/{pipeline_id}", json={"config": {"data_collection": settings}})
    assert response.status_code == 200, response.text
    return asked


def frames_pass(client: TestClient, active_id: str, count: int) -> None:
    start = metrics(client, active_id).get("frames_processed", 0)
    wait_for(lambda: metrics(client, active_id)["frames_processed"] >= start + count, 30,
             what=f"{count} more frames")


def test_each_collection_mode_adds_media_at_its_rate(platform_client: TestClient, model_dir: Path,
                                                     part_video: Path, tmp_path: Path) -> None:
    client = platform_client
    project_id = client.post("/api/projects", json={"name": "Collecting line"}).json()["id"]
    model_id = insert_model(client, project_id)
    assert upload_folder(client.app.state.store, next(model_dir.rglob("model.xml")).parent, openvino_prefix(model_id))
    source = create(client, project_id, "sources",
                    {"type": "video_file", "name": "Line video", "config": {"path": str(part_video), "loop": True}})
    sink = create(client, project_id, "sinks",
                  {"type": "filesystem", "name": "Folder", "config": {"output_dir": str(tmp_path / "events")}})
    pipeline = create(client, project_id, "pipelines", {
        "name": "Collecting", "source_id": source["id"], "sink_id": sink["id"], "model_id": model_id,
        "config": {"threshold": THRESHOLD, "fps": 10,
                   "data_collection": {"mode": "interval", "interval_s": 1.0, "max_per_hour": 1000}}})

    asked = time.monotonic()
    started = client.post("/api/active-pipelines", json={"pipeline_id": pipeline["id"]})
    assert started.status_code == 201, started.text
    active_id = started.json()["id"]
    try:
        wait_for(lambda: client.get(f"/api/active-pipelines/{active_id}").json()["status"] in ("running", "failed"),
                 START_TIMEOUT_S, what="the pipeline to run")
        assert client.get(f"/api/active-pipelines/{active_id}").json()["status"] == "running"

        # interval: one frame per second, labelled by the pipeline threshold.
        interval = wait_for(lambda: (items := collected(client, project_id)) and len(items) >= 3 and items, 30,
                            what="interval frames")
        assert len(interval) <= (time.monotonic() - asked) / 1.0 + 1  # never faster than one per interval_s
        for item in interval:  # type: ignore[union-attr]
            assert (item["origin"], item["pipeline_id"]) == ("collected", pipeline["id"])
            assert 0.0 <= item["score"] <= 1.0 and item["split"] in ("train", "eval")
            assert item["label"] == ("normal" if item["score"] < THRESHOLD else "anomalous")
        assert client.get(f"/api/media/{interval[0]['id']}").content.startswith(b"\x89PNG")  # type: ignore[index]

        # uncertain: every frame inside the band, unlabelled (a person decides later).
        collect(client, pipeline["id"], mode="uncertain", band=[0.0, 1.0], max_per_hour=1000)
        uncertain = wait_for(lambda: (items := collected(client, project_id, label="unlabelled")) and len(items) >= 8
                             and items, 30, what="uncertain frames")
        scores = sorted(item["score"] for item in uncertain)  # type: ignore[union-attr]
        assert all(0.0 <= score <= 1.0 for score in scores)

        # confident_normal: only scores below score_below, at most one per interval.
        score_below = scores[len(scores) // 2] + 1e-6  # about half of the video's frames qualify
        before = {item["id"] for item in collected(client, project_id)}
        switched = collect(client, pipeline["id"], mode="confident_normal", score_below=score_below, interval_s=1.0,
                           max_per_hour=1000)
        frames_pass(client, active_id, 20)  # the watcher applies it within a second; let frames through
        # Whatever the uncertain mode still had in flight is unlabelled; the new ones are confident normals.
        confident = wait_for(lambda: (items := [item for item in collected(client, project_id, label="normal")
                                                if item["id"] not in before and item["score"] < score_below])
                             and len(items) >= 2 and items, 30, what="confident normal frames")
        assert len(confident) <= (time.monotonic() - switched) / 1.0 + 1  # type: ignore[arg-type]
        new_normals = [item for item in collected(client, project_id, label="normal") if item["id"] not in before]
        assert all(item["score"] < score_below for item in new_normals)
        assert not [item for item in collected(client, project_id, label="anomalous") if item["id"] not in before]

        # off: no more media while frames keep flowing.
        collect(client, pipeline["id"], mode="off")
        frames_pass(client, active_id, 20)
        settled = len(collected(client, project_id))
        frames_pass(client, active_id, 20)
        assert len(collected(client, project_id)) == settled
        counted = wait_for(lambda: (m := metrics(client, active_id))["collected"] == settled and m, 10,
                           what="the metrics to count every collected frame")
        assert counted["collection_errors"] == 0  # type: ignore[index]
        assert counted["frames_dropped"] == 0  # type: ignore[index]  # a file source waits, it never drops
    finally:
        client.delete(f"/api/active-pipelines/{active_id}")
        wait_for(lambda: client.get(f"/api/active-pipelines/{active_id}").json()["status"] in ("stopped", "failed"),
                 30, what="the pipeline to stop")
