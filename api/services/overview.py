"""Read models for overview pages: what each project holds and does, in a fixed number of queries.

Shared by every page that lists projects (the console's projects page); no rule lives here, only
reads. Counts come from the `media_counts` counters, last jobs from the jobs index, so the cost does
not grow with the media or jobs a project holds.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services.active_runs import refresh as refresh_active
from infra.active_pipelines import ACTIVE
from infra.database.models import ActivePipeline, MediaCount, Model, Pipeline, Project
from infra.orchestration import Job, OrchestrationUnavailable, Orchestrator
from infra.orchestration.job_index import latest_jobs
from infra.orchestration.job_index import refresh as refresh_jobs

log = logging.getLogger(__name__)


@dataclass
class ProjectOverview:
    project: Project
    counts: dict[str, int] = field(default_factory=dict)  # media per label
    champion: Model | None = None
    running_lines: list[str] = field(default_factory=list)  # names of pipelines with a live run
    last_job: Job | None = None

    @property
    def media_total(self) -> int:
        return sum(self.counts.values())


def project_overviews(session: Session, orchestrator: Orchestrator) -> list[ProjectOverview]:
    """Every project, newest first, with its counts, champion, running lines and last job.

    Live rows (running lines, unsettled last jobs) are checked with Prefect first, so a crashed line
    or a finished job never shows as running; when Prefect does not answer they show as last known.
    """
    projects = list(session.scalars(select(Project).order_by(Project.created_at.desc())))
    overviews = {project.id: ProjectOverview(project) for project in projects}
    for row in session.execute(select(MediaCount.project_id, MediaCount.label, MediaCount.total)):
        if row.project_id in overviews and row.total:
            overviews[row.project_id].counts[row.label] = row.total
    for model in session.scalars(select(Model).where(Model.champion)):
        if model.project_id in overviews:
            overviews[model.project_id].champion = model
    for project_id, names in running_lines(session, orchestrator).items():
        if project_id in overviews:
            overviews[project_id].running_lines = names
    for project_id, job in _last_jobs(session, orchestrator, list(overviews)).items():
        overviews[project_id].last_job = job
    return list(overviews.values())


def running_lines(session: Session, orchestrator: Orchestrator,
                  project_id: uuid.UUID | None = None) -> dict[uuid.UUID, list[str]]:
    """Names of the pipelines with a live run, by project (one project's only, when given)."""
    query = (select(ActivePipeline, Pipeline.project_id, Pipeline.name)
             .join(Pipeline, ActivePipeline.pipeline_id == Pipeline.id).where(ActivePipeline.status.in_(ACTIVE)))
    if project_id is not None:
        query = query.where(Pipeline.project_id == project_id)
    rows = session.execute(query).all()
    refresh_active(session, orchestrator, [row[0] for row in rows])
    lines: dict[uuid.UUID, list[str]] = defaultdict(list)
    for active, owner, name in rows:
        if active.status in ACTIVE:
            lines[owner].append(name)
    return {owner: sorted(names) for owner, names in lines.items()}


def _last_jobs(session: Session, orchestrator: Orchestrator, project_ids: list[uuid.UUID]) -> dict[uuid.UUID, Job]:
    jobs = latest_jobs(session, project_ids)
    unsettled = [job.id for job in jobs.values() if not job.settled]
    if unsettled:
        try:
            refresh_jobs(session, orchestrator, unsettled)
        except OrchestrationUnavailable as error:
            log.warning("showing the last known state of %d job(s): %s", len(unsettled), error)
            return jobs
        jobs = latest_jobs(session, project_ids)
    return jobs
