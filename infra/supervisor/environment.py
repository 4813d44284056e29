"""Environment of supervised children: the platform settings, Prefect/MLflow addresses, allocator, threads."""

from __future__ import annotations

import os
from pathlib import Path

from infra.settings import Settings

TCMALLOC = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")
# Loggers whose records also go to the Prefect run logs (visible per job in the Prefect UI).
EXTRA_LOGGERS = "flows,infra,pipelines,anomalib,lightning.pytorch"


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as INSPECT_* so a flow process rebuilds the same Settings (paths resolved)."""
    # The API key stays with the API: flow processes serve no API (and str() of a SecretStr is a mask).
    env = {f"INSPECT_{name.upper()}": str(value)
           for name, value in settings.model_dump(exclude={"api_key"}).items() if value is not None}
    env["INSPECT_DATA_DIR"] = str(settings.resolved_data_dir)
    env["INSPECT_DATABASE_URL"] = settings.resolved_database_url
    env["INSPECT_ALLOWED_PATHS"] = os.pathsep.join(str(root) for root in settings.resolved_allowed_paths)
    return env


def allocator_env(tcmalloc: Path = TCMALLOC) -> dict[str, str]:
    """tcmalloc makes PatchCore's coreset selection 5-8x faster (facts); OpenVINO then needs TBB sanitizers.

    It must be preloaded before the process starts; without the system library nothing changes.
    """
    if not tcmalloc.exists():
        return {}
    preload = [entry for entry in os.environ.get("LD_PRELOAD", "").split(":") if entry]
    if str(tcmalloc) not in preload:
        preload.insert(0, str(tcmalloc))
    return {"LD_PRELOAD": ":".join(preload), "TBB_ENABLE_SANITIZERS": "1"}


def prefect_client_env(api_url: str) -> dict[str, str]:
    return {"PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


# Prefect server services the platform does not use, off unless the operator's environment says otherwise:
# `late_runs` relabels runs that wait past their start as "Late" (every 5 s; jobs wait for a slot on purpose and
# show `pending` either way), `pause_expirations` fails paused runs (every 5 s; no flow pauses), `repossessor`
# frees expired concurrency-limit leases (every 15 s; no deployment has a concurrency limit). Kept: the scheduler
# (retraining schedules), foreman (worker and pool health), cancellation cleanup (retraining's subflows), the
# event persister, task run recorder (retraining's tasks) and triggers (the crash automation).
UNUSED_PREFECT_SERVICES = ("LATE_RUNS", "PAUSE_EXPIRATIONS", "REPOSSESSOR")


def prefect_server_env() -> dict[str, str]:
    return {name: os.environ.get(name, "false")
            for name in (f"PREFECT_SERVER_SERVICES_{service}_ENABLED" for service in UNUSED_PREFECT_SERVICES)}


def worker_env(settings: Settings, api_url: str, tracking_uri: str, *, query_seconds: float = 2,
               heartbeat_seconds: int = 30) -> dict[str, str]:
    """A worker's environment is inherited by every flow process it starts."""
    return {
        **os.environ,
        **settings_env(settings),
        **prefect_client_env(api_url),
        "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(heartbeat_seconds),
        "PREFECT_LOGGING_EXTRA_LOGGERS": EXTRA_LOGGERS,
        "MLFLOW_TRACKING_URI": tracking_uri,
        **mlflow_retry_env(),
        **allocator_env(),
        **threading_env(),
    }


def threading_env() -> dict[str, str]:
    """OpenMP threads (torch's CPU ops, oneDNN, MKL) sleep at a barrier instead of spinning there.

    libgomp's default spins a few hundred thousand rounds waiting for the other thread of a parallel op;
    when another process holds that core (a second job, a live pipeline, anything else on the machine)
    every op waits out the spin. Measured on 2 cores at load 6-11: PatchCore's backbone with 2 threads,
    median 120-500 ms/image with the default, 25-50 with PASSIVE (benchmarks/patchcore_scale.py's fit
    cases). An ``OMP_WAIT_POLICY`` set by the operator is kept.
    """
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def mlflow_retry_env() -> dict[str, str]:
    """MLflow's client retries a failing call for about 2 minutes by default (7 retries, backoff factor 2).

    4 retries with factor 1 (1+2+4+8 s) ride out a supervisor restart of the MLflow server, and a job
    facing a longer outage fails within a quarter of a minute per call, saying so. Set the variables to change it.
    """
    return {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4"),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")}
