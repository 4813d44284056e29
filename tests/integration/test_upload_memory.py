"""Upload memory stays bounded against an API server process, and big downloads stream.

- 8 clients upload the largest images allowed (``INSPECT_MAX_IMAGE_PIXELS`` = 40 Mpx: half RGB,
  half 16-bit grey) at once, three each. Decodes take turns (``INSPECT_MAX_CONCURRENT_DECODES`` = 2),
  so the API's resident memory stays under idle + ``DECODE_BOUND`` (2 decodes of a 40 Mpx image as
  Pillow holds it, 4 bytes per pixel, plus 200 MiB for everything else), while ``GET /api/health``
  keeps answering. Unbounded, 8 decodes at once need about 1.3 GB.
- An image one pixel over the limit is refused from its header (422 naming the setting).
- A 1 GiB export archive downloads with the API's RSS within 100 MiB of its idle size.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from infra.database.engine import session_scope
from infra.database.models import Model, Project
from infra.model_files import archive_key
from tests.integration.api_server import api_server
from tests.integration.process_memory import PeakRss, listening_process

pytestmark = pytest.mark.timeout(300)

MiB = 1024 * 1024
MAX_PIXELS = 40_000_000
SIZE = (8000, 5000)  # exactly MAX_PIXELS
DECODE_BOUND = 2 * MAX_PIXELS * 4 + 200 * MiB
CLIENTS, UPLOADS_EACH = 8, 3


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def largest_images() -> dict[str, bytes]:
    """A 40 Mpx RGB PNG and a 40 Mpx 16-bit grey PNG (a gradient: small files, full decodes)."""
    width, height = SIZE
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    rgb = Image.fromarray(np.stack([ramp, ramp[::-1], np.full_like(ramp, 90)], axis=-1))
    deep = Image.fromarray(ramp.astype(np.uint16) * 200)  # mode I;16
    over = Image.new("L", (SIZE[0] + 1, SIZE[1]), 128)
    return {"rgb": png(rgb), "deep": png(deep), "over": png(over)}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("memory") / "data"
    env = {"INSPECT_MAX_IMAGE_PIXELS": str(MAX_PIXELS), "INSPECT_MAX_CONCURRENT_DECODES": "2"}
    with api_server(data_dir, env) as base_url:
        yield base_url, data_dir


def settle_rss(base_url: str) -> int:
    """The server's RSS once a few requests have warmed it up (idle size)."""
    for _ in range(5):
        httpx.get(f"{base_url}/api/health")
    return listening_process(base_url).memory_info().rss


def test_eight_clients_uploading_the_largest_images_keep_memory_bounded(api, largest_images) -> None:
    base_url, _ = api
    project_id = httpx.post(f"{base_url}/api/projects", json={"name": "big"}).json()["id"]
    idle = settle_rss(base_url)
    statuses: list[int] = []
    health_waits: list[float] = []
    done = threading.Event()

    def client(kind: str) -> None:
        with httpx.Client(base_url=base_url, timeout=240) as http:
            for _ in range(UPLOADS_EACH):
                response = http.post(f"/api/projects/{project_id}/media", data={"label": "normal"},
                                     files=[("files", (f"{kind}.png", largest_images[kind], "image/png"))])
                statuses.append(response.status_code)

    def watch_health() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            while not done.wait(0.5):
                started = time.monotonic()
                assert http.get("/api/health").status_code == 200
                health_waits.append(time.monotonic() - started)

    started = time.monotonic()
    with PeakRss(listening_process(base_url)) as rss:
        watcher = threading.Thread(target=watch_health, daemon=True)
        watcher.start()
        clients = [threading.Thread(target=client, args=("rgb" if index % 2 else "deep",)) for index in range(CLIENTS)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        done.set()
        watcher.join()
    print(f"\n{CLIENTS * UPLOADS_EACH} uploads of 40 Mpx in {time.monotonic() - started:.1f} s: RSS idle "
          f"{idle / MiB:.0f} MiB, peak {rss.peak / MiB:.0f} MiB (+{(rss.peak - idle) / MiB:.0f}, bound "
          f"+{DECODE_BOUND / MiB:.0f}); health answered {len(health_waits)} times, slowest "
          f"{max(health_waits, default=0):.2f} s (load {Path('/proc/loadavg').read_text().split()[0]})")
    assert statuses == [201] * CLIENTS * UPLOADS_EACH
    assert rss.peak - idle <= DECODE_BOUND
    assert len(health_waits) >= 3 and max(health_waits) < 5
    items = httpx.get(f"{base_url}/api/projects/{project_id}/media", params={"limit": 100}).json()["items"]
    assert {(item["width"], item["height"]) for item in items} == {SIZE}
    thumbnail = Image.open(io.BytesIO(httpx.get(f"{base_url}{items[0]['thumbnail_url']}").content))
    assert max(thumbnail.size) == 256


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(api, largest_images) -> None:
    base_url, _ = api
    project_id = httpx.post(f"{base_url}/api/projects", json={"name": "over"}).json()["id"]
    refused = httpx.post(f"{base_url}/api/projects/{project_id}/media", data={"label": "normal"},
                         files=[("files", ("over.png", largest_images["over"], "image/png"))])
    assert refused.status_code == 422
    assert "INSPECT_MAX_IMAGE_PIXELS" in refused.json()["detail"]["errors"][0]["detail"]


def test_a_1_gib_export_download_streams(api) -> None:
    base_url, data_dir = api
    with session_scope(f"sqlite:///{data_dir / 'inspect.db'}") as session:
        project = Project(name="exports")
        session.add(project)
        session.flush()
        model = Model(project_id=project.id, name="big", architecture="padim", status="ready")
        session.add(model)
        session.flush()
        model_id = model.id
    archive = data_dir / "storage" / archive_key(model_id, "openvino")
    archive.parent.mkdir(parents=True)
    with archive.open("wb") as handle:  # 1 GiB, written in 16 MiB pieces (the test process stays small too)
        piece = np.random.default_rng(0).integers(0, 256, 16 * MiB, dtype=np.uint8).tobytes()
        for _ in range(64):
            handle.write(piece)
    idle = settle_rss(base_url)
    received = 0
    with PeakRss(listening_process(base_url)) as rss, httpx.stream(
            "GET", f"{base_url}/api/models/{model_id}/export", params={"format": "openvino"}, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-length"] == str(1024 * MiB)
        for chunk in response.iter_bytes():
            received += len(chunk)
    print(f"\n1 GiB download: RSS idle {idle / MiB:.0f} MiB, peak {rss.peak / MiB:.0f} MiB "
          f"(+{(rss.peak - idle) / MiB:.0f}) (load {Path('/proc/loadavg').read_text().split()[0]})")
    assert received == 1024 * MiB
    assert rss.peak - idle <= 100 * MiB
    assert httpx.get(f"{base_url}/api/models/{uuid.uuid4()}/export", params={"format": "openvino"}).status_code == 404
