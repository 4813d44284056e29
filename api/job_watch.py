"""`geti-inspect jobs watch`: follow one job from a terminal, the way `prefect` and `mlflow` CLIs do.

A client of the REST API only (any machine that reaches the API can watch): a live progress bar
with stage and epoch, then the final metrics. The exit code says how the job ended.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

EXIT_COMPLETED, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2
FINISHED = {"completed", "failed", "cancelled"}


class WatchError(RuntimeError):
    """The job cannot be followed (unknown id, API unreachable or refusing)."""


def describe(job: dict[str, Any]) -> str:
    """`training · fitting · epoch 3/10 · loss 0.41` from a job's type, status and metrics."""
    metrics = job.get("metrics") or {}
    parts = [job.get("type") or "job", metrics.get("stage") or job.get("status", "")]
    if metrics.get("epoch") is not None:
        parts.append(f"epoch {metrics['epoch']}" + (f"/{metrics['max_epochs']}" if metrics.get("max_epochs") else ""))
    if isinstance(metrics.get("loss"), int | float):
        parts.append(f"loss {metrics['loss']:.4g}")
    return " · ".join(str(part) for part in parts if part)


def metrics_table(job: dict[str, Any]) -> Table:
    table = Table("metric", "value")
    for key, value in sorted((job.get("metrics") or {}).items()):
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


class JobReader:
    """GET /jobs/{id}, riding out short API outages (a restart) but not an unknown job."""

    def __init__(self, api_url: str, api_key: str | None, outage_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=10)
        self.outage_s = outage_s

    def read(self, job_id: uuid.UUID, patient: bool = True) -> dict[str, Any]:
        """`patient=False` for the first read: a wrong address should fail at once, not in 30 s."""
        deadline = time.monotonic() + (self.outage_s if patient else 0.0)
        while True:
            try:
                response = self.client.get(f"/jobs/{job_id}")
            except httpx.HTTPError as error:
                if time.monotonic() > deadline:
                    raise WatchError(f"the API at {self.client.base_url} does not answer: {error}") from error
                time.sleep(1.0)
                continue
            if response.status_code == 200:
                return response.json()
            detail = _detail(response)
            if response.status_code >= 500 and time.monotonic() <= deadline:
                time.sleep(1.0)
                continue
            raise WatchError(f"{response.status_code}: {detail}")

    def close(self) -> None:
        self.client.close()


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:200]


def watch(job_id: uuid.UUID, api_url: str, api_key: str | None, console: Console, interval: float = 1.0) -> int:
    """Follow the job to its end; returns the process exit code."""
    reader = JobReader(api_url, api_key)
    try:
        job = reader.read(job_id, patient=False)
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(describe(job), total=1.0)
            while True:
                bar.update(task, completed=float(job.get("progress") or 0.0), description=describe(job))
                if job["status"] in FINISHED:
                    break
                time.sleep(interval)
                job = reader.read(job_id)
    except WatchError as error:
        console.print(f"[red]cannot watch job {job_id}: {error}[/red]", soft_wrap=True)
        return EXIT_UNREACHABLE
    finally:
        reader.close()
    if job["status"] == "completed":
        console.print(f"[green]job {job_id} completed[/green]", soft_wrap=True)
        console.print(metrics_table(job))
        return EXIT_COMPLETED
    console.print(f"[red]job {job_id} {job['status']}: {job.get('error') or job.get('message') or 'no reason given'}"
                  "[/red]", soft_wrap=True)
    return EXIT_FAILED
