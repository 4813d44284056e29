"""Submit, read and cancel jobs through the Prefect API.

One explicit client per API process (no global PREFECT_API_URL needed), so tests and
`serve` can point at any Prefect server. Submission is what `run_deployment(name,
parameters, timeout=0, tags=...)` does, without its global-settings lookup.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    Operator,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Cancelling

from infra.credentials import ServiceAuth
from infra.orchestration.jobs import (
    DEPLOYMENTS,
    FINAL_STATES,
    FINISHED,
    Job,
    JobStatus,
    JobType,
    is_settled,
    project_tag,
    state_types_for,
    status_of,
    tag_value,
    type_tag,
    waiting_message,
)
from infra.settings import Settings

PAGE = 200  # the Prefect API's largest page
_FINISHED_CACHE = 20_000  # settled runs whose artifact data is remembered (a few hundred bytes each)
JOB_TAGS = [type_tag(job_type) for job_type in JobType]  # a run with one of these is a platform job
BUSY_RETRIES_S = (0.05, 0.1, 0.2, 0.4, 0.8)  # then Prefect's own retries: 2, 4, 8, 16 and 32 s


class OrchestrationUnavailable(RuntimeError):
    """The Prefect API cannot be reached or refused a call (the API answers 503)."""


class JobNotFound(LookupError):
    pass


class JobFinished(RuntimeError):
    """A finished job cannot be cancelled."""


class BusyRetries(httpx.BaseTransport):
    """Asks Prefect again within milliseconds when it answers 503 (busy).

    Prefect's SQLite server answers 503 when another write commits in the middle of a transaction that
    read before writing (SQLITE_BUSY_SNAPSHOT), and creating a run from a deployment is one: as another
    run finished, submitting a job took 2 s, because Prefect's client retries only after 2 s (then 4,
    8...). A 503 means the transaction was rolled back, so asking again is safe. These quick retries
    come first; Prefect's own stay behind them for a longer outage.
    """

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for delay in BUSY_RETRIES_S:
            response = self.inner.handle_request(request)
            if response.status_code != 503:
                return response
            response.read()
            response.close()
            time.sleep(delay * random.uniform(1.0, 1.2))  # noqa: S311 - jitter, not security
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def _set_connect_retries(transport: httpx.BaseTransport, retries: int) -> None:
    """Connection attempts made again on a refused connection (INSPECT_PREFECT_CONNECT_RETRIES).

    Prefect's client sets 3 on its connection pool the same way, after creation (it has no setting for it).
    """
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.ConnectionPool):
        pool._retries = retries  # noqa: SLF001 - what Prefect's own client does


def prefect_api_url(settings: Settings) -> str:
    return settings.prefect_api_url or f"http://{settings.services_address}:{settings.prefect_port}/api"


def prefect_client(api_url: str, auth: ServiceAuth | None = None, **kwargs: Any) -> SyncPrefectClient:
    """A client of `api_url` that presents `auth` (default: this process's credentials, `ServiceAuth.install`).

    Prefect's own `get_client()` reads PREFECT_API_AUTH_STRING from settings frozen at import; a client
    made for an explicit address takes the credentials explicitly.
    """
    auth = ServiceAuth.from_environ() if auth is None else auth
    return SyncPrefectClient(api_url, auth_string=auth.prefect_auth_string, **kwargs)


class Orchestrator:
    def __init__(self, api_url: str, timeout: float = 15.0, connect_retries: int = 3) -> None:
        self.api_url = api_url
        self._client = prefect_client(api_url, httpx_settings={"timeout": timeout})
        self._client.__enter__()
        http = self._client._client  # noqa: SLF001 - wrapped after creation, as Prefect adds its own retries
        _set_connect_retries(http._transport, connect_retries)  # noqa: SLF001
        http._transport = BusyRetries(http._transport)  # noqa: SLF001 - keeps Prefect's proxies, TLS and limits
        self._deployments: dict[JobType, uuid.UUID] = {}
        self._finished: OrderedDict[uuid.UUID, tuple[Any, Any]] = OrderedDict()  # artifact data of finished runs
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Orchestrator:
        return cls(prefect_api_url(settings), connect_retries=settings.prefect_connect_retries)

    def close(self) -> None:
        self._client.__exit__(None, None, None)

    # -- submit / cancel -------------------------------------------------------------------

    def submit(self, job_type: JobType, project_id: uuid.UUID | str, parameters: dict[str, Any],
               extra_tags: Iterable[str] = (), idempotency_key: str | None = None) -> uuid.UUID:
        """Create a flow run of the job type's deployment; returns the job id at once."""
        return self.submit_job(job_type, project_id, parameters, extra_tags, idempotency_key).id

    def submit_job(self, job_type: JobType, project_id: uuid.UUID | str, parameters: dict[str, Any],
                   extra_tags: Iterable[str] = (), idempotency_key: str | None = None) -> Job:
        """Create a flow run of the job type's deployment; returns the new (pending) job at once.

        Calls with the same `idempotency_key` get the same run: Prefect's database enforces it, so
        concurrent callers cannot start two.
        """
        tags = [project_tag(project_id), type_tag(job_type), *extra_tags]
        with _unavailable_on_error():
            run = self._client.create_flow_run_from_deployment(
                self._deployment_id(job_type), parameters=parameters, tags=tags, idempotency_key=idempotency_key)
        # Not settled whatever its state (an idempotency key may return an older run): no artifacts were read.
        return replace(_job_from_run(run, None, None, datetime.now(UTC)), settled=False)

    def cancel(self, job_id: uuid.UUID) -> Job:
        """Ask the run to stop: a scheduled run is cancelled at once, a running one within seconds.

        Returns the job as it is right after the request (cancelled, or still running while it stops).
        """
        run = self._read_run(job_id)
        if status_of(run.state_type) in FINISHED:
            raise JobFinished(f"job {job_id} already {status_of(run.state_type).value}")
        with _unavailable_on_error():
            self._client.set_flow_run_state(job_id, Cancelling(message="Cancelled through the API"))
        return self.get_job(job_id)

    # -- read ------------------------------------------------------------------------------

    def get_job(self, job_id: uuid.UUID) -> Job:
        run = self._read_run(job_id)
        return self._jobs([run])[0]

    def list_jobs(self, project_id: uuid.UUID | str | None = None, job_type: JobType | None = None,
                  status: JobStatus | None = None, extra_tags: Iterable[str] = (), limit: int = PAGE,
                  offset: int = 0) -> list[Job]:
        """Newest first, `limit` from `offset`. Only runs tagged as platform jobs are listed.

        Prefect's cost grows with the runs it returns (about 3 ms per run on a loaded 2-core
        machine), not with the runs it holds: pages keep a project with 500 jobs cheap.
        """
        tags = [project_tag(project_id)] if project_id else []
        tags += [type_tag(job_type)] if job_type else []
        tags += list(extra_tags)
        run_filter = FlowRunFilter(tags=FlowRunFilterTags(all_=tags) if tags else None)
        if status is not None:
            run_filter.state = FlowRunFilterState(type=FlowRunFilterStateType(any_=state_types_for(status)))
        with _unavailable_on_error():
            runs = self._client.read_flow_runs(flow_run_filter=run_filter, limit=min(limit, PAGE), offset=offset,
                                               sort=FlowRunSort.EXPECTED_START_TIME_DESC)
        runs = [run for run in runs if _is_job(run)]
        runs.sort(key=lambda run: run.created or run.expected_start_time, reverse=True)
        return self._jobs(runs)

    def jobs_by_id(self, job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Job]:
        ids = list(dict.fromkeys(job_ids))
        runs: list[FlowRun] = []
        for start in range(0, len(ids), PAGE):
            with _unavailable_on_error():
                runs += self._client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids[start:start + PAGE])), limit=PAGE)
        return {job.id: job for job in self._jobs(runs)}

    # -- what the job index (infra/orchestration/job_index.py) reads ----------------------------

    def runs_changed_since(self, ended_after: datetime) -> list[FlowRun]:
        """Job runs not finished, and those that ended after `ended_after`: all a job index pass needs."""
        run_filter = FlowRunFilter(operator=Operator.or_,
                                   state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=FINAL_STATES)),
                                   end_time=FlowRunFilterEndTime(after_=ended_after))
        runs: list[FlowRun] = []
        for page in self._run_pages(run_filter):
            runs += page
        return [run for run in runs if _is_job(run)]

    def job_run_pages(self) -> Iterator[list[FlowRun]]:
        """Every job run, a page at a time (a run created or deleted meanwhile may repeat or be skipped)."""
        for page in self._run_pages(FlowRunFilter(tags=FlowRunFilterTags(any_=JOB_TAGS))):
            yield [run for run in page if _is_job(run)]

    def count_job_runs(self) -> int:
        with _unavailable_on_error():
            return self._client.count_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(any_=JOB_TAGS)))

    def jobs_of(self, runs: list[FlowRun]) -> list[Job]:
        """The runs as jobs, with their progress and metrics (one artifact query per 200 unsettled runs)."""
        return self._jobs(runs)

    def healthy(self) -> tuple[bool, str]:
        error = self._client.api_healthcheck()
        return (error is None, "reachable" if error is None else f"unreachable: {error}")

    @property
    def prefect(self) -> SyncPrefectClient:
        """The Prefect client, for the other orchestration modules (schedules)."""
        return self._client

    def deployment_id(self, job_type: JobType) -> uuid.UUID:
        """The id of the deployment that runs the job type (cached; 503 when it is not registered)."""
        return self._deployment_id(job_type)

    # -- internals -------------------------------------------------------------------------

    def _deployment_id(self, job_type: JobType) -> uuid.UUID:
        with self._lock:
            if job_type not in self._deployments:
                try:
                    with _unavailable_on_error():  # an unreachable Prefect is a 503, not a 500
                        self._deployments[job_type] = self._client.read_deployment_by_name(DEPLOYMENTS[job_type]).id
                except ObjectNotFound as error:
                    raise OrchestrationUnavailable(
                        f"deployment {DEPLOYMENTS[job_type]!r} is not registered with Prefect") from error
            return self._deployments[job_type]

    def _read_run(self, job_id: uuid.UUID) -> FlowRun:
        with _unavailable_on_error():
            try:
                run = self._client.read_flow_run(job_id)
            except ObjectNotFound as error:
                raise JobNotFound(f"Job {job_id} not found") from error
        if not _is_job(run):
            raise JobNotFound(f"Job {job_id} not found")
        return run

    def _run_pages(self, run_filter: FlowRunFilter) -> Iterator[list[FlowRun]]:
        """Offset pages in id order: unique, so pages never overlap by a tie (Prefect's time sorts have none)."""
        offset = 0
        while True:
            with _unavailable_on_error():
                page = self._client.read_flow_runs(flow_run_filter=run_filter, limit=PAGE, offset=offset,
                                                   sort=FlowRunSort.ID_DESC)
            yield page
            if len(page) < PAGE:
                return
            offset += PAGE

    def _jobs(self, runs: list[FlowRun]) -> list[Job]:
        read_at = datetime.now(UTC)  # before the artifacts are read: they are at least this fresh
        data = self._artifact_data(runs, read_at)
        return [_job_from_run(run, *data.get(run.id, (None, None)), read_at) for run in runs]

    def _artifact_data(self, runs: list[FlowRun], read_at: datetime) -> dict[uuid.UUID, tuple[Any, Any]]:
        """(progress, metrics table) per run: read from Prefect, or remembered for a settled run.

        A run writes its artifacts before its final state, so a settled run's data never changes:
        listing 200 finished jobs again costs no artifact read.
        """
        data: dict[uuid.UUID, tuple[Any, Any]] = {}
        with self._lock:
            for run in runs:
                if run.id in self._finished and status_of(run.state_type) in FINISHED:  # not re-run since
                    self._finished.move_to_end(run.id)
                    data[run.id] = self._finished[run.id]
        missing = [run for run in runs if run.id not in data]
        if not missing:
            return data
        latest = self._latest_artifact_data([run.id for run in missing])
        with self._lock:
            for run in missing:
                data[run.id] = (latest.get((run.id, "progress")), latest.get((run.id, "table")))
                if _run_settled(run, read_at):
                    self._finished[run.id] = data[run.id]
            while len(self._finished) > _FINISHED_CACHE:
                self._finished.popitem(last=False)
        return data

    def _latest_artifact_data(self, run_ids: list[uuid.UUID]) -> dict[tuple[uuid.UUID, str], Any]:
        """The newest progress and metrics-table artifact per run, in one query per 200 runs."""
        latest: dict[tuple[uuid.UUID, str], Any] = {}
        for start in range(0, len(run_ids), PAGE):
            artifact_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids[start:start + PAGE]),
                                             type=ArtifactFilterType(any_=["progress", "table"]))
            offset = 0
            while True:
                with _unavailable_on_error():
                    page = self._client.read_artifacts(artifact_filter=artifact_filter, sort=ArtifactSort.CREATED_DESC,
                                                       limit=PAGE, offset=offset)
                for artifact in page:
                    latest.setdefault((artifact.flow_run_id, artifact.type), artifact.data)
                if len(page) < PAGE:
                    break
                offset += PAGE
        return latest


def _is_job(run: FlowRun) -> bool:
    """Snapshot, training and export runs are jobs; other flow runs (live pipelines) are not."""
    return tag_value(run.tags, "job") in JobType._value2member_map_


def _run_settled(run: FlowRun, read_at: datetime) -> bool:
    ended = run.end_time or getattr(run.state, "timestamp", None)  # Prefect sets end_time on every final state
    return is_settled(status_of(run.state_type), ended, read_at)


def _job_from_run(run: FlowRun, progress_data: Any, metrics_data: Any, read_at: datetime | None = None) -> Job:
    """`read_at`: when the artifact data was read (decides whether the job is settled); default now."""
    status = status_of(run.state_type)
    progress = min(max(float(progress_data or 0.0) / 100.0, 0.0), 1.0)
    if status is JobStatus.COMPLETED:
        progress = 1.0
    job_type = tag_value(run.tags, "job")
    project = tag_value(run.tags, "project")
    return Job(
        id=run.id,
        type=JobType(job_type) if job_type in JobType._value2member_map_ else None,  # type: ignore[arg-type]
        status=status,
        project_id=uuid.UUID(project) if project else None,
        progress=progress,
        metrics=_table_row(metrics_data),
        message=(run.state.message if run.state else None) or (
            waiting_message(run.work_pool_name) if status is JobStatus.PENDING else None),
        created_at=run.created,
        started_at=run.start_time,
        finished_at=run.end_time if status in FINISHED else None,
        settled=_run_settled(run, read_at or datetime.now(UTC)),
    )


def _table_row(data: Any) -> dict[str, Any]:
    """Metrics live in a one-row table artifact (stored by Prefect as JSON text)."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return {}
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return dict(data[0])
    return {}


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """Turn transport and server errors into OrchestrationUnavailable (lookups keep their own errors)."""
    try:
        yield
    except (ObjectNotFound, JobNotFound, OrchestrationUnavailable):
        raise
    except (httpx.HTTPError, PrefectHTTPStatusError, OSError) as error:
        raise OrchestrationUnavailable(f"Prefect API unavailable: {error}") from error


# For the other orchestration modules (schedules).
unavailable_on_error = _unavailable_on_error
