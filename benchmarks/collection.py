"""What data collection costs the frame path, and how fast a collector stores frames.

1. ``FrameCollector.offer`` on the calling (inference) thread, per frame, for each mode: the
   policy decision, plus a frame copy into the queue when it is accepted. Storing is stubbed
   out here (a no-op save) so only the inference thread's share is measured. Baseline: mode
   ``off`` in the same run. p50/p99 are numpy's linearly interpolated percentiles.
2. The collector thread's own cost per stored frame with the real writer: PNG encoding, then
   thumbnail, blob, media row and cap check in a fresh SQLite database and local store. Baseline:
   the PNG encoding alone (what any storing costs).

Every line carries the 1-minute load average (the machine is shared).

    .venv/bin/python benchmarks/collection.py --frames 2000 --size 640x480
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.support import load  # noqa: E402
from infra.collected_media import CollectedMediaWriter  # noqa: E402
from infra.configs import DataCollection  # noqa: E402
from infra.database.engine import session_scope  # noqa: E402
from infra.database.migrate import upgrade  # noqa: E402
from infra.database.models import Project  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.storage import build_store  # noqa: E402
from pipelines.collection import FrameCollector, encode_frame  # noqa: E402

MODES = {
    "off": DataCollection(),
    "interval 1 s": DataCollection(mode="interval", interval_s=1.0, max_per_hour=36_000),
    "confident_normal": DataCollection(mode="confident_normal", score_below=0.5, interval_s=1.0),
    "uncertain (every frame)": DataCollection(mode="uncertain", band=[0.0, 1.0], max_per_hour=36_000),
}


def offer_cost(image: np.ndarray, frames: int) -> None:
    print(f"{'mode':<26}{'µs per frame (p50)':>20}{'p99':>10}{'accepted':>10}{'load':>8}")
    now = datetime.now(UTC)
    for name, config in MODES.items():
        collector = FrameCollector(lambda frame: None, config)
        collector.start()
        times = []
        for index in range(frames):
            started = time.perf_counter()
            collector.offer(image, (index % 100) / 100, 0.5, now, index)
            times.append((time.perf_counter() - started) * 1e6)
        collector.stop()
        p50, p99 = np.percentile(times, [50, 99])
        label = f"{name} (baseline)" if config.mode == "off" else name
        print(f"{label:<26}{p50:>20.1f}{p99:>10.1f}{collector.counts()['collected']:>10}{load():>8}")


def store_cost(image: np.ndarray, frames: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        upgrade(settings.resolved_database_url)
        with session_scope(settings.resolved_database_url) as session:
            project = Project(name="bench")
            session.add(project)
            session.flush()
            project_id = project.id
        writer = CollectedMediaWriter(settings.resolved_database_url, build_store(settings), project_id,
                                      None, max_collected=frames // 2,  # no pipeline row here
                                      thumbnail_size=settings.thumbnail_size)
        encode_s = store_s = 0.0
        for index in range(frames):
            started = time.perf_counter()
            frame = encode_frame(np.roll(image, index, axis=1), "normal", 0.1, datetime.now(UTC), index)
            encoded = time.perf_counter()
            writer(frame)
            encode_s += encoded - started
            store_s += time.perf_counter() - encoded
    print(f"collector thread, per stored frame: PNG encode (baseline) {encode_s / frames * 1000:.1f} ms, "
          f"store (thumbnail + blob + row + cap, cap hit for the second half) {store_s / frames * 1000:.1f} ms; "
          f"load {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--stored", type=int, default=100, help="frames stored with the real writer")
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    offer_cost(image, args.frames)
    store_cost(image, args.stored)


if __name__ == "__main__":
    main()
