"""Retraining flow (job type `retraining`): keep a project's champion fresh.

snapshot the current media → skip when too few images were added since the champion's snapshot
→ train a candidate (the `train-model` flow, as a subflow) → score candidate and champion with
their exported OpenVINO IRs on the SAME evaluation items of the new snapshot → decide (see
`infra.champion.decide`) → promote. Each step is a Prefect task (the run shows where time went);
the decision, its reason and both scores are the job's metrics and are logged on the candidate's
MLflow run. Started by a project's training schedule or `POST .../training-schedule/run`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, tags, task
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from sqlalchemy import func, select

from flows.common import JobProgress, current_job_id, flow_settings, scratch
from flows.snapshot import freeze_snapshot
from flows.training.flow import train_model
from infra.champion import current_champion, decide, promote
from infra.database.engine import session_scope
from infra.database.models import Model, Project, Snapshot, SnapshotItem
from infra.model_files import download_folder, openvino_prefix
from infra.orchestration.jobs import JobType, project_tag, type_tag
from infra.orchestration.schedules import load_settings, project_of_slug
from infra.settings import Settings
from infra.storage import blob_key, build_store
from infra.tracking import log_retraining_decision, tracking_uri

log = logging.getLogger(__name__)

WARM_START_IMPORTS = ("flows.training.trainer",)
EVAL_LABELS = ("normal", "anomalous")


class RetrainingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Assessment:
    """What the new snapshot holds compared with the champion's."""

    champion_id: uuid.UUID | None
    new_images: int
    train_normals: int


def _run_name() -> str:
    project_id = flow_run.parameters.get("project_id")
    try:
        project = uuid.UUID(str(project_id)) if project_id else _schedule_project()
        with session_scope(flow_settings().resolved_database_url) as session:
            row = session.get(Project, project) if project is not None else None
            name = row.name if row is not None else project_id or "?"
    except Exception:  # noqa: BLE001 - a name is not worth failing the run for
        name = project_id or "?"
    return f"retrain · {name}"


def _schedule_project() -> uuid.UUID | None:
    """The project of the schedule that made this run (its slug is the run's `created_by`), if one did."""
    run_id = current_job_id()
    if run_id is None:
        return None
    with get_client(sync_client=True) as client:
        created_by = client.read_flow_run(run_id).created_by
    return project_of_slug(created_by.display_value) if created_by is not None and created_by.type == "SCHEDULE" \
        else None


def _tag_with_project(project_id: uuid.UUID) -> None:
    """Runs made by a schedule carry only the deployment's tags; the project tag lists them with the project."""
    run_id = current_job_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        if project_tag(project_id) not in run.tags:
            client.update_flow_run(run_id, tags=[*run.tags, project_tag(project_id)])


@task(name="snapshot-media")
def snapshot_media(project_id: uuid.UUID) -> uuid.UUID:
    """Freeze the project's current media (labels and splits) into a new snapshot."""
    settings = flow_settings()
    with session_scope(settings.resolved_database_url) as session:
        if session.get(Project, project_id) is None:
            raise RetrainingError(f"project {project_id} does not exist")
        snapshot = Snapshot(project_id=project_id, name="Retraining set", status="pending", job_id=current_job_id())
        session.add(snapshot)
        session.flush()
        freeze_snapshot(session, snapshot.id)
        return snapshot.id


@task(name="count-new-images")
def assess(project_id: uuid.UUID, snapshot_id: uuid.UUID) -> Assessment:
    """Images in the new snapshot that the champion's snapshot lacks (all of them without a champion)."""
    settings = flow_settings()
    with session_scope(settings.resolved_database_url) as session:
        champion = current_champion(session, project_id)
        new = select(func.count()).where(SnapshotItem.snapshot_id == snapshot_id)
        if champion is not None and champion.snapshot_id is not None:
            known = select(SnapshotItem.media_id).where(SnapshotItem.snapshot_id == champion.snapshot_id)
            new = new.where(SnapshotItem.media_id.not_in(known))
        normals = select(func.count()).where(SnapshotItem.snapshot_id == snapshot_id, SnapshotItem.label == "normal",
                                             SnapshotItem.split == "train")
        return Assessment(champion.id if champion is not None else None, session.scalar(new) or 0,
                          session.scalar(normals) or 0)


@task(name="discard-snapshot")
def discard_snapshot(snapshot_id: uuid.UUID) -> None:
    """A skipped run leaves no snapshot behind (a nightly schedule would pile them up)."""
    settings = flow_settings()
    with session_scope(settings.resolved_database_url) as session:
        snapshot = session.get(Snapshot, snapshot_id)
        if snapshot is not None:
            session.delete(snapshot)


@task(name="create-candidate")
def create_candidate(project_id: uuid.UUID, snapshot_id: uuid.UUID, architecture: str,
                     parameters: dict[str, Any]) -> uuid.UUID:
    settings = flow_settings()
    with session_scope(settings.resolved_database_url) as session:
        count = session.scalar(select(func.count()).where(Model.project_id == project_id)) or 0
        model = Model(project_id=project_id, name=f"{architecture} retrained #{count + 1}", architecture=architecture,
                      parameters=parameters, status="training", snapshot_id=snapshot_id, job_id=current_job_id())
        session.add(model)
        session.flush()
        return model.id


def eval_items(session: Any, snapshot_id: uuid.UUID) -> list[tuple[str, str]]:
    """(label, blob hash) of the snapshot's evaluation items: its `eval` split, plus every anomalous image
    (never trained on, so always fit to evaluate). Unlabelled items are left out."""
    rows = session.execute(select(SnapshotItem.label, SnapshotItem.sha256)
                           .where(SnapshotItem.snapshot_id == snapshot_id, SnapshotItem.label.in_(EVAL_LABELS),
                                  (SnapshotItem.split == "eval") | (SnapshotItem.label == "anomalous"))
                           .order_by(SnapshotItem.id)).all()
    return [(label, sha256) for label, sha256 in rows]


def image_auroc(labels: list[str], scores: list[float]) -> float | None:
    """Image AUROC with `anomalous` as the positive class; None unless both classes are present."""
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return None
    return float(roc_auc_score([label == "anomalous" for label in labels], scores))


@task(name="score-on-eval-set")
def score_models(snapshot_id: uuid.UUID, model_ids: list[uuid.UUID]
                 ) -> tuple[dict[uuid.UUID, float | None], int]:
    """Image AUROC of each model's stored IR on the snapshot's evaluation items, and how many there were."""
    settings = flow_settings()
    from infra.openvino_model import score_images

    with session_scope(settings.resolved_database_url) as session:
        items = eval_items(session, snapshot_id)
    store = build_store(settings)
    images = [store.get(blob_key(sha256)) for _, sha256 in items]
    labels = [label for label, _ in items]
    results: dict[uuid.UUID, float | None] = {}
    with scratch(settings, "eval-") as tmp:
        for model_id in model_ids:
            folder = Path(tmp) / str(model_id)
            if not download_folder(store, openvino_prefix(model_id), folder):
                log.warning("model %s has no OpenVINO files in storage: cannot score it", model_id)
                results[model_id] = None
                continue
            results[model_id] = image_auroc(labels, score_images(folder, images)) if images else None
    return results, len(items)


@task(name="promote-candidate")
def promote_candidate(model_id: uuid.UUID) -> None:
    settings = flow_settings()
    with session_scope(settings.resolved_database_url) as session:
        model = session.get(Model, model_id)
        if model is None:
            raise RetrainingError(f"candidate {model_id} was deleted before it could be promoted")
        promote(session, model, tracking_uri(settings))


@task(name="record-decision")
def record_decision(model_id: uuid.UUID, metrics: dict[str, Any]) -> None:
    settings = flow_settings()
    with session_scope(settings.resolved_database_url) as session:
        run_id = session.scalar(select(Model.mlflow_run_id).where(Model.id == model_id))
    if run_id:
        log_retraining_decision(tracking_uri(settings), run_id, metrics)


def _schedule_settings(settings: Settings) -> dict[str, Any]:
    """The settings of the schedule that created this run, for a run whose parameters were wiped
    (a pause/resume in the Prefect UI empties a schedule's parameters; see infra/orchestration/schedules.py)."""
    project = _schedule_project()
    stored = load_settings(build_store(settings), project) if project is not None else None
    if not stored:
        raise RetrainingError("no project_id given and the run was not made by a project's training schedule")
    log.warning("run started without parameters: using the stored settings of project %s's schedule", project)
    return stored


@flow(name="retrain-project", flow_run_name=_run_name, log_prints=True)
def retrain_project(project_id: str | None = None, architecture: str = "padim",
                    parameters: dict[str, Any] | None = None, promotion: str = "auto", min_improvement: float = 0.0,
                    min_new_images: int = 0) -> dict[str, Any]:
    """Retrain the project's model and promote the candidate when it beats the champion."""
    settings = flow_settings()
    if project_id is None:
        stored = _schedule_settings(settings)
        project_id = stored["project_id"]
        architecture, parameters = stored.get("architecture", architecture), stored.get("parameters", parameters)
        promotion, min_improvement = stored.get("promotion", promotion), stored.get("min_improvement", min_improvement)
        min_new_images = stored.get("min_new_images", min_new_images)
    project = uuid.UUID(str(project_id))
    _tag_with_project(project)
    progress = JobProgress("Retraining: snapshot, train, compare with the champion")
    progress.update(0.0, stage="snapshot")
    snapshot_id = snapshot_media(project)
    found = assess(project, snapshot_id)
    metrics: dict[str, Any] = {"snapshot_id": str(snapshot_id), "new_images": found.new_images,
                               "champion_model_id": str(found.champion_id) if found.champion_id else None,
                               "candidate_model_id": None, "candidate_image_auroc": None,
                               "champion_image_auroc": None, "eval_images": 0}
    skip = None
    if found.new_images < min_new_images:
        skip = f"{found.new_images} new images since the champion's snapshot; the schedule needs {min_new_images}"
    elif found.train_normals < settings.min_normal_images:
        skip = f"training needs {settings.min_normal_images} normal training images; the project has " \
               f"{found.train_normals}"
    if skip is not None:
        discard_snapshot(snapshot_id)
        metrics.update(decision="skipped", reason=skip, snapshot_id=None)
        log.info("retraining skipped: %s", skip)
        progress.done(**metrics)
        return metrics

    progress.update(0.05, stage="training", **metrics)
    candidate = create_candidate(project, snapshot_id, architecture, dict(parameters or {}))
    metrics["candidate_model_id"] = str(candidate)
    progress.update(0.06, **metrics)
    # The subflow is listed as the project's training job of the candidate, like one started by hand.
    with tags(project_tag(project), type_tag(JobType.TRAINING), f"model:{candidate}"):
        train_model(model_id=str(candidate), freeze=False)

    progress.update(0.85, stage="evaluating")
    scored = [candidate, *([found.champion_id] if found.champion_id else [])]
    scores, eval_count = score_models(snapshot_id, scored)
    metrics.update(candidate_image_auroc=scores[candidate], eval_images=eval_count,
                   champion_image_auroc=scores.get(found.champion_id) if found.champion_id else None)
    verdict = decide(scores[candidate], metrics["champion_image_auroc"], found.champion_id is not None, promotion,
                     min_improvement)
    metrics.update(decision=verdict.decision, reason=verdict.reason)
    progress.update(0.95, stage="deciding", **metrics)
    if verdict.decision == "promoted":
        promote_candidate(candidate)
    record_decision(candidate, metrics)
    log.info("retraining of project %s: %s (%s)", project, verdict.decision, verdict.reason)
    progress.done(**metrics)
    return metrics
