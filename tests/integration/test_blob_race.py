"""No media row without its bytes: identical uploads racing deletes, against an API server process.

Two uploads of the same bytes share one blob. Each round uploads image X, then deletes that item
while X is uploaded again, at the same moment; the second upload answered 201, so its item must
read back with X's bytes. Rounds run 8 at a time, and at the end every surviving row of the
project is read back (a lost blob stays lost). 1,000 rounds on SQLite; 250 on PostgreSQL, where the
same lock is a row lock (on a loaded 2-core machine 1,000 there took 2.5 minutes). Before the blob
lock (infra/blob_gc.py) about half of such rounds lost their bytes.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.integration.api_server import api_server
from tests.integration.databases import fresh_postgres_database

PARALLEL = 8

pytestmark = pytest.mark.timeout(300)


def distinct_pngs(count: int) -> list[bytes]:
    """Small PNGs, each with its own bytes (rounds must not share blobs with each other)."""
    images = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (index % 256, index // 256 % 256, 7)).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    return images


async def race(base_url: str, rounds: int) -> tuple[list[str], list[tuple[str, bytes]], float]:
    """Runs the rounds; returns (rows whose bytes are gone, surviving (id, bytes), seconds)."""
    images = distinct_pngs(rounds)
    failures: list[str] = []
    survivors: list[tuple[str, bytes]] = []
    started = time.monotonic()
    limits = httpx.Limits(max_connections=2 * PARALLEL)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        project_id = (await client.post("/api/projects", json={"name": "race"})).json()["id"]

        async def upload(data: bytes) -> str:
            response = await client.post(f"/api/projects/{project_id}/media", data={"label": "normal"},
                                         files=[("files", ("x.png", data, "image/png"))])
            assert response.status_code == 201, response.text
            return response.json()["items"][0]["id"]

        async def one_round(data: bytes) -> None:
            first = await upload(data)
            deleted, second = await asyncio.gather(client.delete(f"/api/media/{first}"), upload(data))
            assert deleted.status_code == 204, deleted.text
            survivors.append((second, data))

        gate = asyncio.Semaphore(PARALLEL)

        async def gated(data: bytes) -> None:
            async with gate:
                await one_round(data)

        await asyncio.gather(*(gated(data) for data in images))
        listed = (await client.get(f"/api/projects/{project_id}/media", params={"limit": 1}))
        assert listed.json()["total"] == len(survivors)
        reads = await asyncio.gather(*(client.get(f"/api/media/{media_id}") for media_id, _ in survivors))
        for (media_id, data), read in zip(survivors, reads, strict=True):
            if read.status_code != 200 or read.content != data:
                failures.append(f"{media_id}: {read.status_code}")
    return failures, survivors, time.monotonic() - started


def run_race(data_dir: Path, rounds: int, env: dict[str, str] | None = None) -> None:
    with api_server(data_dir, env) as base_url:
        failures, survivors, seconds = asyncio.run(race(base_url, rounds))
    print(f"\n{rounds} rounds, {len(survivors)} survivors, {len(failures)} lost, {seconds:.1f} s "
          f"(load {Path('/proc/loadavg').read_text().split()[0]})")
    assert failures == [], f"{len(failures)} of {rounds} rounds lost their bytes, e.g. {failures[:5]}"


def test_identical_uploads_racing_deletes_never_lose_bytes_sqlite(tmp_path: Path) -> None:
    run_race(tmp_path / "data", 1000)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.mark.postgres
def test_identical_uploads_racing_deletes_never_lose_bytes_postgres(tmp_path: Path, postgres_database: str) -> None:
    run_race(tmp_path / "data", 250, {"INSPECT_DATABASE_URL": postgres_database})
