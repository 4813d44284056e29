"""Project training schedules: one Prefect cron schedule per project on the `retraining` deployment.

Cron, timezone and `active` live only in Prefect and are read back from it (a schedule paused in
the Prefect UI reads paused here). The retraining settings are the schedule's parameters, which
Prefect hands to every run it creates. Slug `project-<id>`.

PITFALL (facts.md): any schedule update that omits `parameters` wipes them, and the Prefect UI's
pause/resume switch sends only `active`. So the settings also sit in object storage
(`projects/<id>/training-schedule.json`, written with every PUT): reading a schedule whose
parameters were wiped puts them back, and a run that starts without them recovers its project
from the schedule's slug and its settings from that copy (`recover_parameters`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import DeploymentSchedule
from prefect.client.schemas.schedules import CronSchedule
from pydantic import ValidationError

from infra.orchestration.client import Orchestrator, unavailable_on_error
from infra.orchestration.jobs import JobType
from infra.storage import ObjectStore

NEXT_RUNS = 3


class InvalidSchedule(ValueError):
    """A cron expression or timezone that Prefect would refuse (the API answers 422)."""


@dataclass(frozen=True)
class ProjectSchedule:
    project_id: uuid.UUID
    cron: str
    timezone: str
    active: bool
    parameters: dict[str, Any]  # the retraining flow's parameters, project_id included

    def next_runs(self, count: int = NEXT_RUNS) -> list[datetime]:
        """The next run times in UTC; none while the schedule is paused."""
        return next_run_times(self.cron, self.timezone, count) if self.active else []


def schedule_slug(project_id: uuid.UUID | str) -> str:
    return f"project-{project_id}"


def settings_key(project_id: uuid.UUID | str) -> str:
    return f"projects/{uuid.UUID(str(project_id))}/training-schedule.json"


def load_settings(store: ObjectStore, project_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The stored copy of the schedule's parameters (None when the project has no schedule)."""
    try:
        return json.loads(store.get(settings_key(project_id)))
    except FileNotFoundError:
        return None


def project_of_slug(slug: str | None) -> uuid.UUID | None:
    """The project whose schedule has this slug (a run's `created_by.display_value`)."""
    if not slug or not slug.startswith("project-"):
        return None
    try:
        return uuid.UUID(slug.removeprefix("project-"))
    except ValueError:
        return None


def cron_schedule(cron: str, timezone: str) -> CronSchedule:
    """Prefect's schedule object, or InvalidSchedule saying what is wrong."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidSchedule(f"unknown timezone {timezone!r} (use an IANA name such as Europe/Berlin)") from error
    try:
        return CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as error:
        messages = "; ".join(str(item["msg"]).removeprefix("Value error, ") for item in error.errors())
        raise InvalidSchedule(messages) from error


def next_run_times(cron: str, timezone: str, count: int = NEXT_RUNS) -> list[datetime]:
    """The times Prefect's scheduler will create runs for (its own date generator, DST rules included)."""
    from prefect.server.schemas.schedules import CronSchedule as ServerCronSchedule

    dates = asyncio.run(ServerCronSchedule(cron=cron, timezone=timezone).get_dates(count))
    return [datetime.fromtimestamp(date.timestamp(), tz=UTC) for date in dates]


def put_schedule(orchestrator: Orchestrator, store: ObjectStore, project_id: uuid.UUID, cron: str, timezone: str,
                 parameters: dict[str, Any], active: bool) -> ProjectSchedule:
    """Create or replace the project's schedule (Prefect drops the runs the old one had created)."""
    schedule = cron_schedule(cron, timezone)
    parameters = {**parameters, "project_id": str(project_id)}
    client = orchestrator.prefect
    deployment_id = orchestrator.deployment_id(JobType.RETRAINING)
    with unavailable_on_error():
        existing = _find(orchestrator, project_id)
        if existing is not None:
            client.update_deployment_schedule(deployment_id, existing.id, active=active, schedule=schedule,
                                              parameters=parameters, slug=schedule_slug(project_id))
        else:
            client.create_deployment_schedules(deployment_id, [DeploymentScheduleCreate(
                schedule=schedule, active=active, parameters=parameters, slug=schedule_slug(project_id))])
    store.put(settings_key(project_id), json.dumps(parameters).encode())
    return ProjectSchedule(project_id, cron, timezone, active, parameters)


def get_schedule(orchestrator: Orchestrator, store: ObjectStore, project_id: uuid.UUID) -> ProjectSchedule | None:
    """The schedule as Prefect has it; parameters wiped by a pause in the Prefect UI are put back."""
    with unavailable_on_error():
        found = _find(orchestrator, project_id)
    if found is None or not isinstance(found.schedule, CronSchedule):
        return None
    parameters = dict(found.parameters)
    if parameters.get("project_id") != str(project_id):
        parameters = load_settings(store, project_id) or {"project_id": str(project_id)}
        with unavailable_on_error():
            orchestrator.prefect.update_deployment_schedule(found.deployment_id or orchestrator.deployment_id(
                JobType.RETRAINING), found.id, active=found.active, parameters=parameters)
    return ProjectSchedule(project_id, found.schedule.cron, found.schedule.timezone or "UTC", found.active,
                           parameters)


def delete_schedule(orchestrator: Orchestrator, store: ObjectStore, project_id: uuid.UUID) -> bool:
    """Remove the schedule; Prefect deletes the runs it had scheduled and not started. False when none."""
    with unavailable_on_error():
        found = _find(orchestrator, project_id)
        if found is not None:
            orchestrator.prefect.delete_deployment_schedule(orchestrator.deployment_id(JobType.RETRAINING), found.id)
    store.delete(settings_key(project_id))
    return found is not None


def _find(orchestrator: Orchestrator, project_id: uuid.UUID) -> DeploymentSchedule | None:
    slug = schedule_slug(project_id)
    schedules = orchestrator.prefect.read_deployment_schedules(orchestrator.deployment_id(JobType.RETRAINING))
    return next((schedule for schedule in schedules if schedule.slug == slug), None)
