"""Flow run names that say what a run is, for the Prefect UI: `train · Model v7 · Line 3`, `import · Line 3`.

Each function is a flow's `flow_run_name`: Prefect calls it as the run starts, it reads the run's
parameters and looks the names up in the database. A name is a convenience, never a reason to
fail: when the rows are gone the run keeps a short id instead.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from prefect.runtime import flow_run
from sqlalchemy.orm import Session

from flows.common import flow_settings
from infra.database.engine import session_scope
from infra.database.models import ActivePipeline, Model, Pipeline, Project, Snapshot

log = logging.getLogger(__name__)

SEPARATOR = " · "


def _name(kind: str, parts: Callable[[Session, dict], list[str]], fallback_parameter: str) -> str:
    parameters = dict(flow_run.parameters or {})
    try:
        with session_scope(flow_settings().resolved_database_url) as session:
            return SEPARATOR.join([kind, *parts(session, parameters)])
    except Exception:  # noqa: BLE001 - a missing row or a database hiccup must not fail the run
        log.warning("could not name the %s run from the database", kind, exc_info=True)
        return SEPARATOR.join([kind, str(parameters.get(fallback_parameter, "?"))[:8]])


def _project_name(session: Session, project_id: uuid.UUID) -> str:
    project = session.get(Project, project_id)
    return project.name if project is not None else str(project_id)[:8]


def _model(session: Session, model_id: str) -> Model:
    model = session.get(Model, uuid.UUID(model_id))
    if model is None:
        raise LookupError(f"model {model_id} not found")
    return model


def training_run_name() -> str:
    def parts(session: Session, parameters: dict) -> list[str]:
        model = _model(session, parameters["model_id"])
        return [model.name, _project_name(session, model.project_id)]

    return _name("train", parts, "model_id")


def export_run_name() -> str:
    def parts(session: Session, parameters: dict) -> list[str]:
        compression = parameters.get("compression")
        export = f"{parameters['format']}-{compression}" if compression else parameters["format"]
        return [export, _model(session, parameters["model_id"]).name]

    return _name("export", parts, "model_id")


def snapshot_run_name() -> str:
    def parts(session: Session, parameters: dict) -> list[str]:
        snapshot = session.get(Snapshot, uuid.UUID(parameters["snapshot_id"]))
        if snapshot is None:
            raise LookupError("snapshot not found")
        return [_project_name(session, snapshot.project_id)]

    return _name("snapshot", parts, "snapshot_id")


def import_run_name() -> str:
    def parts(session: Session, parameters: dict) -> list[str]:
        return [_project_name(session, uuid.UUID(parameters["project_id"]))]

    return _name("import", parts, "project_id")


def pipeline_run_name() -> str:
    def parts(session: Session, parameters: dict) -> list[str]:
        active = session.get(ActivePipeline, uuid.UUID(parameters["active_pipeline_id"]))
        pipeline = session.get(Pipeline, active.pipeline_id) if active is not None else None
        if pipeline is None:
            raise LookupError("pipeline not found")
        return [pipeline.name, _project_name(session, pipeline.project_id)]

    return _name("pipeline", parts, "active_pipeline_id")
