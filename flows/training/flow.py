"""Training flow: snapshot → dataset folder → anomalib fit/test/export → storage + MLflow → model ready.

The model row exists from submission (status "training"). It ends "ready" with metrics only once
its IR and checkpoint are in object storage and its MLflow version is registered; on failure or
cancellation everything this run wrote is removed again and the row ends "failed" with the reason.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.exceptions import TerminationSignal
from sqlalchemy import select, update

from flows.common import JobProgress, cancel_requested, current_job_id, flow_settings, scratch, step
from flows.run_names import training_run_name
from flows.snapshot import freeze_snapshot
from flows.training.summary import publish_summary, version_description
from infra.anomaly.backbones import hub_cache_dir
from infra.anomaly.candidates import AUTO, SearchSpec
from infra.anomaly.imported_weights import sync_imported
from infra.database.engine import session_scope
from infra.database.models import Model, Project, Snapshot, SnapshotItem
from infra.evaluation import THRESHOLD_METRIC, EvaluationRecord, load_eval_items, save_record, score_items
from infra.model_files import checkpoint_key, model_prefix, openvino_prefix, upload_folder
from infra.settings import Settings
from infra.storage import ObjectStore, blob_key, build_store
from infra.tracking import ModelRun, TrackingUnavailable, is_tracking_failure, tracking_uri
from infra.ui_links import ui_links

log = logging.getLogger(__name__)

# torch and anomalib load inside the flow (`prefect deploy` imports this module); warm workers
# import them ahead of the run (infra/orchestration/warm_engine.py).
WARM_START_IMPORTS = ("flows.training.trainer",)

# Share of the progress bar per stage; training reports its own fraction inside its share.
DATA_SHARE, TRAIN_END = 0.05, 0.85
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class TrainingFlowError(RuntimeError):
    pass


class ModelWithdrawn(TrainingFlowError):
    """The model row was cancelled or deleted while the job ran: its results must go."""


@dataclass(frozen=True)
class ModelSpec:
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    architecture: str
    parameters: dict[str, Any]
    snapshot_id: uuid.UUID
    project_name: str


def _load_spec(settings: Settings, model_id: uuid.UUID) -> ModelSpec:
    with session_scope(settings.resolved_database_url) as session:
        model = session.get(Model, model_id)
        if model is None:
            raise TrainingFlowError(f"model {model_id} does not exist (deleted before training started?)")
        if model.snapshot_id is None:
            raise TrainingFlowError(f"model {model_id} has no snapshot to train on")
        project = session.get(Project, model.project_id)
        return ModelSpec(model.id, model.project_id, model.name, model.architecture, dict(model.parameters or {}),
                         model.snapshot_id, project.name if project is not None else str(model.project_id))


def dataset_items(session: Any, snapshot_id: uuid.UUID) -> list[tuple]:
    """(unique safe file name, label, blob hash, mask blob hash, split) per snapshot item, in a stable order."""
    from flows.training.dataset import DatasetItem

    items = session.scalars(select(SnapshotItem).where(SnapshotItem.snapshot_id == snapshot_id)
                            .order_by(SnapshotItem.id)).all()
    return [DatasetItem(f"{index:05d}-{_UNSAFE_CHARS.sub('_', item.filename).lstrip('._-') or 'image'}"[:200],
                        item.label, item.sha256, item.mask_sha256, split=item.split)
            for index, item in enumerate(items)]


def _fetch_blob(store: ObjectStore):  # noqa: ANN202 - a closure over the store
    def fetch(sha256: str) -> bytes:
        try:
            return store.get(blob_key(sha256))
        except FileNotFoundError as error:
            raise TrainingFlowError(f"image {sha256[:12]}… of the snapshot is missing from storage") from error

    return fetch


@dataclass
class Trained:
    """The model the flow stores, registers and marks ready (an automatic selection's chosen candidate)."""

    architecture: str
    result: Any  # TrainingResult: files, resolved parameters, dataset facts, timings
    record: EvaluationRecord  # the IR's score of each evaluation item
    metrics: dict[str, Any]  # numbers, plus `candidates` and `selection` after an automatic selection
    tags: dict[str, str] = field(default_factory=dict)  # for the model's MLflow run


def _mark_ready(settings: Settings, spec: ModelSpec, trained: Trained, metrics: dict[str, Any],
                run: ModelRun) -> None:
    """Only a row still "training" becomes ready: a cancel or delete in the meantime wins."""
    with session_scope(settings.resolved_database_url) as session:
        result = session.execute(
            update(Model).where(Model.id == spec.id, Model.status == "training")
            .values(status="ready", metrics=metrics, error=None, mlflow_run_id=run.run_id,
                    mlflow_model_name=run.model_name, mlflow_model_version=run.version,
                    architecture=trained.architecture, parameters=trained.result.parameters))
        if result.rowcount != 1:
            raise ModelWithdrawn(f"model {spec.id} was cancelled or deleted while training")


def _mark_failed(settings: Settings, model_id: uuid.UUID, reason: str) -> None:
    with session_scope(settings.resolved_database_url) as session:
        session.execute(update(Model).where(Model.id == model_id, Model.status == "training")
                        .values(status="failed", error=reason[:2000]))


def _failure_reason(error: BaseException) -> str:
    if isinstance(error, ModelWithdrawn) or (isinstance(error, TerminationSignal) and cancel_requested()):
        return "cancelled"
    if isinstance(error, TerminationSignal):
        return "interrupted: the worker running the job was stopped"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def _snapshot_items(settings: Settings, spec: ModelSpec, freeze: bool, progress: JobProgress) -> list:
    with session_scope(settings.resolved_database_url) as session:
        if freeze:
            progress.update(0.0, stage="snapshot")
            freeze_snapshot(session, spec.snapshot_id)
        snapshot = session.get(Snapshot, spec.snapshot_id)
        if snapshot is None or snapshot.status != "ready":
            raise TrainingFlowError(f"snapshot {spec.snapshot_id} is not ready")
        return dataset_items(session, spec.snapshot_id)


def _start_run(settings: Settings, spec: ModelSpec) -> ModelRun:
    run = ModelRun(tracking_uri(settings), spec.project_id, spec.id, run_name=spec.name, project_name=spec.project_name,
                   tags={"geti_inspect.job_id": str(current_job_id()),
                         "geti_inspect.snapshot_id": str(spec.snapshot_id), "architecture": spec.architecture})
    run.log_params({"architecture": spec.architecture, **spec.parameters, "snapshot_id": str(spec.snapshot_id)})
    return run


def _prepare(work: Path, spec: ModelSpec, settings: Settings, on_progress: Any) -> Any:
    from flows.training.trainer import TrainingSteps

    return TrainingSteps(work / "dataset", spec.architecture, spec.parameters, work / "run",
                         on_progress=on_progress, data_dir=settings.resolved_data_dir)


def _fit(steps: Any) -> None:
    steps.fit()


def _evaluate(steps: Any) -> dict[str, float | str]:
    """The figures and what the pixel ones rest on (``pixel_metrics``: a word, not a number)."""
    metrics = steps.evaluate()
    return {**_numeric(metrics), **{key: value for key, value in metrics.items() if isinstance(value, str)}}


def _export_ir(steps: Any) -> Path:
    return steps.export_ir()


def _verify_ir(steps: Any) -> float:
    return steps.verify_ir()


def _score_eval_set(settings: Settings, store: ObjectStore, snapshot_id: uuid.UUID, steps: Any) -> EvaluationRecord:
    """The exported IR's score of each evaluation item (what a line will see), for the model's evaluation."""
    items = load_eval_items(settings.resolved_database_url, snapshot_id)
    return EvaluationRecord(snapshot_id, steps.shipped_threshold(),
                            score_items(steps.openvino_dir, items, _fetch_blob(store)))


def _upload(store: ObjectStore, model_id: uuid.UUID, result: Any, record: EvaluationRecord) -> None:
    upload_folder(store, result.openvino_dir, openvino_prefix(model_id))
    store.put_file(checkpoint_key(model_id), result.checkpoint)
    save_record(store, model_id, record)


def _register(run: ModelRun, spec: ModelSpec, trained: Trained) -> str:
    result = trained.result
    run.log_params({"dataset": result.dataset, "image_size": list(result.image_size)})
    run.log_history([_numeric(entry) for entry in result.history])
    run.log_artifacts(result.openvino_dir, "openvino")
    run.log_artifact(result.checkpoint, "checkpoint")
    run.log_text(trained.record.to_json().decode(), "evaluation/evaluation.json")
    for key, value in trained.tags.items():
        run.client.set_tag(run.run_id, key, value)
    return run.register("openvino", description=version_description(
        spec.name, spec.project_name, result.parameters, trained.architecture, result.dataset, trained.metrics))


def _train_one(settings: Settings, store: ObjectStore, spec: ModelSpec, work: Path, on_progress: Any) -> Trained:
    """One architecture, each step a Prefect task."""
    # The trainer keeps Prefect's SIGTERM handler in force (flows/training/signals.py): cancels stay cancels.
    steps = step("prepare model", _prepare, work, spec, settings, on_progress)
    step("fit", _fit, steps)
    metrics: dict[str, Any] = step("evaluate", _evaluate, steps)
    step("export IR", _export_ir, steps)
    step("verify IR", _verify_ir, steps)
    record = step("score eval set", _score_eval_set, settings, store, spec.snapshot_id, steps)
    result = steps.result()
    return Trained(spec.architecture, result, record, {**metrics, THRESHOLD_METRIC: result.threshold})


def _select(settings: Settings, store: ObjectStore, spec: ModelSpec, work: Path, run: ModelRun,
            children: list[ModelRun], progress: JobProgress) -> Trained:
    """An automatic selection (flows/training/search.py): every candidate a task and a nested MLflow run."""
    from flows.training.search import SearchContext, run_search, selection_summary

    search = SearchSpec.from_parameters(spec.parameters)

    def start_run(candidate: Any, index: int) -> ModelRun:
        child = ModelRun(tracking_uri(settings), spec.project_id, spec.id, project_name=spec.project_name,
                         run_name=f"{spec.name} · candidate {index + 1}: {candidate.label}",
                         tags={"mlflow.parentRunId": run.run_id, "geti_inspect.job_id": str(current_job_id()),
                               "geti_inspect.snapshot_id": str(spec.snapshot_id),
                               "architecture": candidate.architecture, "geti_inspect.candidate": candidate.label})
        children.append(child)
        return child

    def on_progress(fraction: float, fields: dict[str, Any]) -> None:
        progress.update(DATA_SHARE + (TRAIN_END - DATA_SHARE) * fraction, stage="selecting", **fields)

    context = SearchContext(work / "dataset", work, settings.resolved_data_dir,
                            load_eval_items(settings.resolved_database_url, spec.snapshot_id),
                            functools.cache(_fetch_blob(store)), spec.snapshot_id, start_run, on_progress)
    chosen, outcomes, choice, used = run_search(search, context)
    for child in children:
        child.client.set_tag(child.run_id, "geti_inspect.candidate.chosen", str(child.run_id == chosen.run_id).lower())
    selection = selection_summary(chosen, choice, search.decision_metric, used, outcomes)
    metrics = {**chosen.metrics, THRESHOLD_METRIC: chosen.result.threshold,
               "candidates": [outcome.summary() for outcome in outcomes], "selection": selection}
    return Trained(chosen.candidate.architecture, chosen.result, chosen.record, metrics,
                   tags={"geti_inspect.selection.chosen": chosen.candidate.label,
                         "geti_inspect.selection.reason": selection["reason"][:5000]})


@flow(name="train-model", flow_run_name=training_run_name, log_prints=True)
def train_model(model_id: str, freeze: bool = False) -> dict[str, Any]:
    """Train the model row `model_id` on its snapshot (frozen first when `freeze`).

    Each step is a Prefect task, so the run's task list and timeline show where the time goes.
    """
    marks = {"start": time.perf_counter()}
    from flows.training.dataset import materialise
    from flows.training.trainer import ProgressEvent

    marks["imports"] = time.perf_counter()
    settings = flow_settings()
    spec = _load_spec(settings, uuid.UUID(model_id))
    store = build_store(settings)
    progress = JobProgress(f"Training {spec.architecture} model {spec.name!r}")
    run: ModelRun | None = None
    children: list[ModelRun] = []  # an automatic selection's candidate runs
    try:
        items = step("load snapshot", _snapshot_items, settings, spec, freeze, progress)
        with scratch(settings, "train-") as tmp:
            work = Path(tmp)
            progress.update(0.01, stage="dataset")
            step("materialise data", materialise, items, _fetch_blob(store), work / "dataset")
            marks["dataset"] = time.perf_counter()
            progress.update(DATA_SHARE, stage="preparing")
            run = step("start MLflow run", _start_run, settings, spec)

            def on_progress(event: ProgressEvent) -> None:
                fields = {key: value for key, value in event.to_dict().items() if key != "progress"}
                progress.update(DATA_SHARE + (TRAIN_END - DATA_SHARE) * event.progress, **fields)

            marks["tracking"] = time.perf_counter()
            # Backbone weights imported by hand (infra/anomaly/imported_weights.py) into this worker's cache.
            sync_imported(store, hub_cache_dir(settings.resolved_data_dir))
            if spec.architecture == AUTO:
                trained = _select(settings, store, spec, work, run, children, progress)
            else:
                trained = _train_one(settings, store, spec, work, on_progress)
            result, metrics = trained.result, trained.metrics
            marks["train"] = time.perf_counter()
            progress.update(TRAIN_END, stage="saving", **metrics)
            step("upload files", _upload, store, spec.id, result, trained.record)
            marks["storage"] = time.perf_counter()
            progress.update(0.95, stage="registering")
            step("register in MLflow", _register, run, spec, trained)
            marks["mlflow"] = time.perf_counter()
            timings = {f"time_{key}": value for key, value in _numeric(result.timings).items()}
            timings.update(_phase_times(marks))
            run.log_metrics({**metrics, **timings})  # text figures (pixel_metrics) become run tags
            run.finish()
            _mark_ready(settings, spec, trained, {**metrics, "snapshot_id": str(spec.snapshot_id)}, run)
    except BaseException as error:
        reason = _failure_reason(error)
        tracking_failed = is_tracking_failure(error)
        if tracking_failed:
            reason = f"MLflow tracking server {tracking_uri(settings)} unavailable: {reason}"
        log.error("training of model %s failed: %s", spec.id, reason)
        _clean_up(store, spec.id, run, cancelled=reason == "cancelled", children=children)
        _mark_failed(settings, spec.id, reason)
        if tracking_failed:  # the job's message (Prefect's state) names MLflow too
            raise TrackingUnavailable(reason) from error
        raise
    progress.done(**metrics, **timings)
    try:  # the model is ready: a report that cannot be written must not fail the job
        publish_summary(str(spec.id), spec.name, spec.project_name, trained.architecture, result.parameters,
                        result.dataset, metrics, timings, run, ui_links(settings))
    except Exception:  # noqa: BLE001
        log.exception("could not publish the training summary of model %s", spec.id)
    return metrics


def _phase_times(marks: dict[str, float]) -> dict[str, float]:
    """Seconds per phase of the flow (marks in order), for the job metrics and MLflow."""
    return {f"time_{name}_s": round(marks[name] - marks[previous], 3) for previous, name in pairwise(marks)}


def _clean_up(store: ObjectStore, model_id: uuid.UUID, run: ModelRun | None, cancelled: bool,
             children: list[ModelRun] = ()) -> None:
    """Leave nothing half-written: no stored files, no registered version; a cancelled run is deleted
    (with the candidate runs of an automatic selection)."""
    try:
        store.delete_prefix(model_prefix(model_id))
    except Exception:  # noqa: BLE001 - cleanup must not hide the original error
        log.exception("could not delete the stored files of model %s", model_id)
    for mlflow_run in [*children, *([run] if run is not None else [])]:
        try:
            if cancelled:
                mlflow_run.discard("KILLED")
            else:
                if mlflow_run.version is not None:
                    mlflow_run.client.delete_model_version(mlflow_run.model_name, mlflow_run.version)
                    mlflow_run.version = None
                mlflow_run.finish("FAILED")
        except Exception:  # noqa: BLE001
            log.exception("could not clean up MLflow run %s", mlflow_run.run_id)
