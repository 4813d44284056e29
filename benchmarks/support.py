"""Helpers shared by the benchmark scripts; runtime dependencies only (no pytest, no dev extras)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..100) of a non-empty sample.

    Below ``100 / (100 - share)`` values it is the maximum (p95 of 10 values is the largest): report such
    a figure through :func:`percentile_or_max`, which then says "max"."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]


def resolves(count: int, share: float) -> bool:
    """Whether ``count`` values resolve the nearest-rank ``share`` percentile as something below the max."""
    return count * (100 - share) >= 100


def percentile_or_max(values: Sequence[float], share: float) -> tuple[str, float]:
    """("p95", value) when the sample resolves that percentile, else ("max", the maximum): never a
    maximum under a percentile's name."""
    if resolves(len(values), share):
        return f"p{share:g}", percentile(values, share)
    return "max", max(values)


def materialise_mtd_slice(images: Path, root: Path, normal: int, defects: int) -> Path:
    """A training dataset at ``root``: the first ``normal`` good tiles and ``defects`` of each defect class (with
    their masks) of an MTD-layout folder; returns ``root``."""
    from flows.training.dataset import DatasetItem, materialise

    items = [DatasetItem(path.name, "normal", str(path))
             for path in sorted((images / "MT_Free" / "Imgs").glob("*.jpg"))[:normal]]
    for defect in ("MT_Blowhole", "MT_Crack"):
        for path in sorted((images / defect / "Imgs").glob("*.jpg"))[:defects]:
            items.append(DatasetItem(path.name, "anomalous", str(path), str(path.with_suffix(".png"))))
    materialise(items, lambda ref: Path(ref).read_bytes(), root)
    return root


def load() -> str:
    """The 1-minute load average, printed beside every figure (the machine is shared)."""
    return f"{os.getloadavg()[0]:.2f}"


def wait_http(url: str, timeout_s: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.1) -> object:
    """The first truthy value of `predicate`, polled every `interval_s`; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(interval_s)
    return value


def start_process(args: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO_ROOT) -> subprocess.Popen:
    """A child in its own process group, output to a log file; stop it with `stop_process`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                start_new_session=True)


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def prefect_server(home: Path, port: int) -> tuple[subprocess.Popen, str]:
    """A Prefect server on its own SQLite file; returns the process and its API URL once healthy."""
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}"}
    process = start_process([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env, home / "prefect-server.log")
    wait_http(f"{api_url}/health", timeout_s=120, process=process)
    return process, api_url
