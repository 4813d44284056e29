"""A model's detail page (/ui/projects/{id}/models/{model_id}) and the side-by-side comparison
(/ui/projects/{id}/models/compare?ids=a,b[,c]).

The evaluation comes from the service behind `GET /models/{id}/evaluation`, bounded to what a page shows
(the curves, the counts and a few of the wrong verdicts) and drawn server-side as inline SVG
(api/console/charts.py). The comparison lists the evaluation images the models disagree on most, each
with every model's heat map from `GET /media/{id}/prediction/heatmap.png?model_id=`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.console.charts import histogram_chart, roc_chart
from api.console.forms import detail_text, require_same_origin
from api.console.models import METRIC_COLUMNS, backbone_of
from api.console.navigation import PROJECT_TABS
from api.console.templating import render
from api.deps import SessionDep, StoreDep, get_or_404
from api.links import UiLinksDep
from api.services.evaluation import cached_record, disagreements, model_evaluation
from api.services.models import split_counts
from infra.database.models import Model, Project

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

SHOWN_MISTAKES = 8  # false positives and negatives shown as thumbnails, the most confident first
SHOWN_DISAGREEMENTS = 6
MAX_COMPARED = 3


def _page_base(project: Project) -> dict[str, Any]:
    return {"section": "projects", "tab": "models", "tabs": PROJECT_TABS, "project": project,
            "metric_columns": METRIC_COLUMNS, "backbone_of": backbone_of}


def scalar_metrics(model: Model) -> dict[str, Any]:
    """The model's figures worth a table row (numbers and words), without the selection's lists."""
    return {key: value for key, value in sorted((model.metrics or {}).items())
            if isinstance(value, int | float | str) and key != "snapshot_id"}


def _ids(values: list[str]) -> list[uuid.UUID]:
    """`ids=a,b` (a link) or `ids=a&ids=b` (the models page's checkboxes)."""
    parts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    try:
        ids = list(dict.fromkeys(uuid.UUID(part) for part in parts))
    except ValueError:
        raise HTTPException(status_code=422, detail="ids must be model ids separated by commas") from None
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise HTTPException(status_code=422, detail=f"choose 2 to {MAX_COMPARED} models to compare "
                                                    f"({len(ids)} chosen)")
    return ids


@router.get("/ui/projects/{project_id}/models/compare", response_class=HTMLResponse)
def compare_page(request: Request, project_id: uuid.UUID, session: SessionDep, store: StoreDep,
                 links: UiLinksDep, ids: Annotated[list[str], Query()] = ()) -> HTMLResponse:  # type: ignore[assignment]
    project = get_or_404(session, Project, project_id)
    wanted = _ids(list(ids))
    found = {model.id: model for model in session.scalars(
        select(Model).where(Model.id.in_(wanted), Model.project_id == project_id))}
    compared = [found[model_id] for model_id in wanted if model_id in found]
    if len(compared) != len(wanted):
        missing = ", ".join(str(model_id) for model_id in wanted if model_id not in found)
        raise HTTPException(status_code=404, detail=f"no model {missing} in this project")
    records = {}
    for model in compared:
        record = cached_record(store, model.id) if model.status == "ready" else None
        if record is not None:
            records[model.id] = record
    metric_keys = sorted({key for model in compared for key in scalar_metrics(model)})
    parameter_keys = sorted({key for model in compared for key in (model.parameters or {})})
    return render(request, "model_compare.html", {
        **_page_base(project), "models": compared, "links": links, "metric_keys": metric_keys,
        "metrics": {model.id: scalar_metrics(model) for model in compared}, "parameter_keys": parameter_keys,
        "counts": split_counts(session, [model.snapshot_id for model in compared]),
        "disagreements": disagreements(records, SHOWN_DISAGREEMENTS) if len(records) == len(compared) else [],
        "unscored": [model for model in compared if model.id not in records],
    })


def _evaluation_view(session: Session, store: Any, model: Model) -> dict[str, Any]:
    try:
        evaluation = model_evaluation(session, store, model, shown=SHOWN_MISTAKES)
    except HTTPException as error:  # not ready, or trained before records were kept
        return {"evaluation": None, "evaluation_problem": detail_text(error)}
    verdicts = evaluation.at_threshold
    return {"evaluation": evaluation, "evaluation_problem": None, "roc": roc_chart(evaluation.roc),
            "histogram": histogram_chart(evaluation.histogram, verdicts.threshold),
            "confusion": {"tp": verdicts.true_positives, "tn": verdicts.true_negatives,
                          "fp": evaluation.normal_count - verdicts.true_negatives,
                          "fn": evaluation.anomalous_count - verdicts.true_positives}}


@router.get("/ui/projects/{project_id}/models/{model_id}", response_class=HTMLResponse)
def model_page(request: Request, project_id: uuid.UUID, model_id: uuid.UUID, session: SessionDep,
               store: StoreDep, links: UiLinksDep) -> HTMLResponse:
    project = get_or_404(session, Project, project_id)
    model = get_or_404(session, Model, model_id)
    if model.project_id != project_id:
        raise HTTPException(status_code=404, detail=f"Model {model_id} not found in this project")
    metrics = model.metrics or {}
    return render(request, "model_detail.html", {
        **_page_base(project), "model": model, "links": links, "metrics": scalar_metrics(model),
        "counts": split_counts(session, [model.snapshot_id]).get(model.snapshot_id) if model.snapshot_id else None,
        "candidates": metrics.get("candidates") if isinstance(metrics.get("candidates"), list) else [],
        "selection": metrics.get("selection") if isinstance(metrics.get("selection"), dict) else None,
        **_evaluation_view(session, store, model),
    })
