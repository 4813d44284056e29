"""The training page (/ui/projects/{id}/train): choose an architecture (or automatic selection), set its
parameters, start the training, then follow it live and cancel it.

The architectures are those of `GET /trainable-models` as cards, recommended first and unavailable ones
greyed with the reason; choosing one is a link (the page works without scripts), and its parameter form
is generated from its JSON schema. The form posts here and goes through the same training service as
`POST /projects/{id}/train`; the page then shows the job, which train.js follows from `GET /api/jobs/{id}`.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, get_args

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.console.dataset import label_counts
from api.console.forms import detail_text, field_errors, require_same_origin, see_other, text_fields
from api.console.navigation import PROJECT_TABS
from api.console.templating import render
from api.deps import SessionDep, SettingsDep, StoreDep, get_or_404
from api.schemas.trainable_models import ParameterSchema, TrainableModel
from api.schemas.training import DecisionMetric, TrainRequest
from api.services.jobs import OrchestratorDep, cancel_job
from api.services.media import split_counts
from api.services.training import start_training, trainable_models, training_parameters
from infra.anomaly.candidates import AUTO
from infra.database.models import Model, Project
from infra.orchestration import JobStatus
from infra.settings import Settings
from infra.storage import ObjectStore

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_same_origin)])

PARAMETER_PREFIX = "p."  # form fields of the chosen architecture's parameters
SPEED_ORDER = {"fast": 0, "medium": 1, "slow": 2}
DECISION_METRICS: tuple[str, ...] = get_args(DecisionMetric)
AUTO_CARD = {"name": AUTO, "display_name": "Automatic selection",
             "summary": "Trains the cheapest good architectures on the same data and keeps the best by the "
                        "decision metric (a cheaper one within noise of the best wins)",
             "speed": "slow", "accuracy": "high", "recommended": True, "available": True, "unavailable_reason": None}


def ordered_cards(catalog: list[TrainableModel]) -> list[dict[str, Any]]:
    """Automatic selection, then the recommended, then the other available (fastest first), then the rest."""
    cards = [entry.model_dump() for entry in catalog]
    cards.sort(key=lambda card: (not card["available"], not card["recommended"], SPEED_ORDER.get(card["speed"], 1)))
    return [AUTO_CARD, *cards]


def field_value(spec: ParameterSchema, value: Any) -> str:
    """A parameter's value as its form field shows it (arrays comma-separated)."""
    if value is None:
        return ""
    if spec.type == "array":
        return ", ".join(str(item) for item in value)
    if spec.type == "boolean":
        return "true" if value else "false"
    return str(value)


def parse_field(name: str, spec: ParameterSchema, text: str) -> Any:
    """A form field's text as the parameter's JSON value (ValueError with a message for people)."""
    text = text.strip()
    if text == "":
        if spec.nullable:
            return None
        raise ValueError("a value is required")
    if spec.type == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if spec.type == "number":
        try:
            return float(text)
        except ValueError:
            raise ValueError("must be a number") from None
    if spec.type == "boolean":
        return text == "true"
    if spec.type == "array":
        items = [item.strip() for item in text.split(",") if item.strip()]
        numeric = isinstance(spec.default, list) and spec.default and all(
            isinstance(item, int | float) for item in spec.default)
        try:
            return [float(item) for item in items] if numeric else items
        except ValueError:
            raise ValueError("must be numbers separated by commas") from None
    if spec.type == "object":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("must be JSON") from None
    return text


def _data(session: Session, project: Project, settings: Settings) -> dict[str, Any]:
    labels = label_counts(session, project.id)
    return {"labels": labels, "splits": split_counts(session, project.id, sum(labels.values())),
            "min_normal": settings.min_normal_images, "enough": labels.get("normal", 0) >= settings.min_normal_images}


def _train_context(session: Session, settings: Settings, store: ObjectStore, project: Project,
                   architecture: str | None) -> dict[str, Any]:
    catalog = trainable_models(settings, store)
    cards = ordered_cards(catalog)
    chosen = next((card for card in cards if card["name"] == architecture), cards[0])
    entry = next((entry for entry in catalog if entry.name == chosen["name"]), None)
    return {"section": "projects", "tab": "models", "tabs": PROJECT_TABS, "project": project, "cards": cards,
            "chosen": chosen, "parameters": entry.parameters if entry else {}, "field_value": field_value,
            "prefix": PARAMETER_PREFIX, "decision_metrics": DECISION_METRICS, "values": {}, "errors": {},
            "problem": None, "data": _data(session, project, settings), "job": None}


@router.get("/ui/projects/{project_id}/train", response_class=HTMLResponse)
def train_page(request: Request, project_id: uuid.UUID, session: SessionDep, settings: SettingsDep,
               store: StoreDep, architecture: str | None = None, job: uuid.UUID | None = None) -> HTMLResponse:
    project = get_or_404(session, Project, project_id)
    context = _train_context(session, settings, store, project, architecture)
    if job is not None:
        model = session.query(Model).filter(Model.job_id == job, Model.project_id == project_id).one_or_none()
        context["job"] = {"id": job, "model": model}
    return render(request, "train.html", context)


def _request_body(context: dict[str, Any], form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The TrainRequest fields of the posted form (only parameters changed from their defaults), and the
    messages of fields that do not parse."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"architecture": context["chosen"]["name"]}
    if form.get("model_name", "").strip():
        body["model_name"] = form["model_name"].strip()
    if body["architecture"] == AUTO:
        if form.get("time_budget_s", "").strip():
            body["time_budget_s"] = form["time_budget_s"].strip()
        body["decision_metric"] = form.get("decision_metric") or "image_auroc"
        return body, errors
    parameters = {}
    for name, spec in context["parameters"].items():
        key = PARAMETER_PREFIX + name
        if key not in form or form[key].strip() == field_value(spec, spec.default):
            continue
        try:
            parameters[name] = parse_field(name, spec, form[key])
        except ValueError as error:
            errors[key] = str(error)
    body["parameters"] = parameters
    return body, errors


def _message_field(message: str, changed: list[str]) -> str:
    """The form field an API message is about: the one changed parameter, or the first changed one it names;
    else the form as a whole."""
    if len(changed) == 1:
        return PARAMETER_PREFIX + changed[0]
    for name in changed:
        singular = re.escape(name[:-1]) + r"\(s\)" if name.endswith("s") else re.escape(name)
        if re.search(rf"\b({re.escape(name)}|{singular})(?![\w.])", message):
            return PARAMETER_PREFIX + name
    return "__all__"


@router.post("/ui/projects/{project_id}/train", response_class=HTMLResponse)
async def submit(request: Request, project_id: uuid.UUID, session: SessionDep, settings: SettingsDep,
                 store: StoreDep, orchestrator: OrchestratorDep) -> Response:
    project = get_or_404(session, Project, project_id)
    form = await text_fields(request)
    context = _train_context(session, settings, store, project, form.get("architecture"))
    context["values"] = form
    body, errors = _request_body(context, form)
    status = 422
    if not errors:
        try:
            train = TrainRequest(**body)
        except ValidationError as error:
            errors = field_errors(error)
        else:
            try:  # the parameters first, so their message goes next to the field it is about
                parameters = training_parameters(train, settings, store)
            except HTTPException as error:
                errors = {_message_field(detail_text(error), list(body.get("parameters", {}))): detail_text(error)}
            else:
                try:
                    accepted = start_training(session, settings, store, orchestrator, project_id, train, parameters)
                except HTTPException as error:  # too little data (422), Prefect unreachable (503): nothing written
                    session.rollback()
                    errors, status = {"__all__": detail_text(error)}, error.status_code
                else:
                    return see_other(request, f"/ui/projects/{project_id}/train?job={accepted.job_id}")
    context["errors"] = errors
    return render(request, "train.html", context, status_code=status)


@router.post("/ui/projects/{project_id}/train/{job_id}/cancel", response_class=HTMLResponse)
def cancel(request: Request, project_id: uuid.UUID, job_id: uuid.UUID, session: SessionDep, settings: SettingsDep,
           store: StoreDep, orchestrator: OrchestratorDep) -> Response:
    project = get_or_404(session, Project, project_id)
    try:
        cancel_job(session, orchestrator, job_id)
    except HTTPException as error:  # 409 already finished, 404, 503
        session.rollback()
        context = _train_context(session, settings, store, project, None)
        context["job"] = {"id": job_id, "model": None}
        context["problem"] = detail_text(error)
        return render(request, "train.html", context, status_code=error.status_code)
    session.commit()
    return see_other(request, f"/ui/projects/{project_id}/train?job={job_id}&status={JobStatus.CANCELLED.value}")
