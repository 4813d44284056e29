"""CPU time of one API app: `create_app`, its start-up and its first requests, as every API test and process pays.

Two ways of putting the routers on the app, alternating in one process so that both see the same machine:
  `include_router`  FastAPI's own (the baseline): it analyses every included route again for each app;
  `serve_router`    the platform's (`api/routing.py`): the routes built at import are served as they are.

For each app: create it on a fresh data dir, start it (migrations, the job-index poller) under Starlette's
TestClient, ask for a project list, a 404 and a console page, stop it. Prints the median CPU seconds (user +
system, every thread of this process) per app of each way, their ratio and the machine's 1-minute load.

    .venv/bin/python benchmarks/app_start.py --apps 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import api.app  # noqa: E402
import api.console  # noqa: E402
from benchmarks.support import load  # noqa: E402
from infra.settings import Settings  # noqa: E402

PATHS = ("/api/projects", "/api/nothing-here", "/ui/")


def include_router(app: FastAPI, router: APIRouter) -> None:
    app.include_router(router)


def app_cpu_s(attach: Callable[[FastAPI, APIRouter], None]) -> float:
    """CPU seconds of one app's life with `attach` putting the routers on it."""
    from fastapi.testclient import TestClient

    api.app.serve_router = api.console.serve_router = attach  # type: ignore[assignment]
    started = time.process_time()
    with tempfile.TemporaryDirectory() as data_dir:
        app = api.app.create_app(Settings(data_dir=Path(data_dir) / "data", job_index_poll_s=0))
        with TestClient(app) as client:
            for path in PATHS:
                client.get(path)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=20, help="apps per way (default 20)")
    args = parser.parse_args()
    ways = {"include_router": include_router, "serve_router": api.app.serve_router}
    app_cpu_s(ways["serve_router"])  # imports and first-use caches, measured by neither
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.apps):
        for name, attach in ways.items():
            samples[name].append(app_cpu_s(attach))
    baseline = statistics.median(samples["include_router"])
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:15s} median {median:.3f} CPU-s per app over {len(values)} apps "
              f"({median / baseline:.2f}x the include_router baseline)")
    print(f"load (1 min): {load()}")


if __name__ == "__main__":
    main()
