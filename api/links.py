"""Links from API resources to their pages in the Prefect and MLflow UIs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.schemas.jobs import JobLinks, JobOut
from api.schemas.models import ModelLinks, ModelOut
from infra.database.models import Model
from infra.orchestration import Job
from infra.ui_links import UiLinks, ui_links


def get_ui_links(request: Request) -> UiLinks:
    return ui_links(request.app.state.settings, request.url.hostname)


UiLinksDep = Annotated[UiLinks, Depends(get_ui_links)]


def model_out(model: Model, links: UiLinks) -> ModelOut:
    out = ModelOut.model_validate(model)
    out.links = ModelLinks(
        mlflow_run=links.mlflow_run(model.mlflow_run_id) if model.mlflow_run_id else None,
        prefect_flow_run=links.prefect_flow_run(model.job_id) if model.job_id else None)
    return out


def job_out(job: Job, links: UiLinks) -> JobOut:
    out = JobOut.model_validate(job)
    out.links = JobLinks(prefect_flow_run=links.prefect_flow_run(job.id))
    return out
