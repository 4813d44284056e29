"""Jobs are Prefect flow runs: submit, read, cancel, and the Prefect configuration applied at start."""

from infra.orchestration.client import (
    JobFinished,
    JobNotFound,
    OrchestrationUnavailable,
    Orchestrator,
    prefect_api_url,
)
from infra.orchestration.jobs import DEPLOYMENTS, FINISHED, Job, JobStatus, JobType

__all__ = ["DEPLOYMENTS", "FINISHED", "Job", "JobFinished", "JobNotFound", "JobStatus", "JobType",
           "OrchestrationUnavailable", "Orchestrator", "prefect_api_url"]
