"""Automatic model selection (``"architecture": "auto"``) inside the training flow.

Every candidate trains on the same materialised snapshot, then its exported IR scores the same
evaluation items (``infra/evaluation.py``); the decision metric and the noise rule
(``infra/model_selection.py``) pick the one to keep. Each candidate is a Prefect task of the
training run and a nested MLflow run under the model's run (params, metrics, seconds, and whether
it was chosen); only the chosen one's files are stored and registered, so losing candidates never
become models. ``time_budget_s`` bounds the search: no candidate starts after it is spent, and a
running one stops there, except that the first candidate always completes (a search ends with a
model).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.common import step
from infra.anomaly.candidates import Candidate, SearchSpec
from infra.evaluation import EvalItem, EvaluationRecord, score_items
from infra.model_selection import Choice, Scored, choose
from infra.score_stats import auroc
from infra.tracking import ModelRun

log = logging.getLogger(__name__)

TRAINED, FAILED, STOPPED, SKIPPED = "trained", "failed", "stopped", "skipped"
# Keys of a candidate's anomalib metrics worth showing beside its IR image AUROC.
SHOWN_METRICS = ("pixel_auroc", "aupro", "synthetic_pixel_auroc", "pixel_metrics", "image_f1")


@dataclass
class CandidateOutcome:
    index: int
    candidate: Candidate
    status: str = SKIPPED
    seconds: float = 0.0
    reason: str | None = None
    # anomalib's test metrics, and `pixel_metrics`: what the pixel figures rest on (masks, synthetic, none)
    metrics: dict[str, float | str] = field(default_factory=dict)
    record: EvaluationRecord | None = None  # the IR's scores on the evaluation items
    result: Any = None  # TrainingResult: the files of the trained model (in the work folder)
    run_id: str | None = None

    @property
    def eval_auroc(self) -> float | None:
        """Image AUROC of the IR on the real evaluation items (None without both classes)."""
        return auroc(self.record.labels, self.record.scores) if self.record is not None else None

    def value(self, metric: str) -> float | None:
        """The decision metric: image AUROC from the IR's scores (anomalib's, on synthetic defects, when the
        set has no anomalous images); pixel metrics from anomalib's test on the same items."""
        if metric == "image_auroc" and self.eval_auroc is not None:
            return self.eval_auroc
        value = self.metrics.get(metric)
        return float(value) if isinstance(value, int | float) else None

    def summary(self) -> dict[str, Any]:
        """The candidate as the job's and the model's metrics list it."""
        out: dict[str, Any] = {"architecture": self.candidate.architecture,
                               "parameters": dict(self.candidate.parameters), "status": self.status,
                               "image_auroc": self.value("image_auroc"), "seconds": round(self.seconds, 1)}
        out.update({key: self.metrics[key] for key in SHOWN_METRICS if key in self.metrics})
        if self.reason:
            out["reason"] = self.reason
        if self.run_id:
            out["mlflow_run_id"] = self.run_id
        return out


@dataclass(frozen=True)
class SearchContext:
    """What every candidate shares: the data, the evaluation items, the parent MLflow run."""

    dataset_root: Path
    work: Path
    data_dir: Path
    items: list[EvalItem]
    fetch: Callable[[str], bytes]
    snapshot_id: Any
    start_run: Callable[[Candidate, int], ModelRun]  # a nested MLflow run for a candidate
    on_progress: Callable[[float, dict[str, Any]], None]  # overall fraction of the search, fields


class _Budget:
    def __init__(self, seconds: float | None) -> None:
        self.deadline = time.monotonic() + seconds if seconds is not None else None

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def train_candidate(context: SearchContext, outcome: CandidateOutcome, total: int,
                    should_stop: Callable[[], bool]) -> CandidateOutcome:
    """Fit, test, export, verify and score one candidate; a failure is recorded, not raised (cancels are)."""
    from flows.training.trainer import ProgressEvent, TrainingCancelled, TrainingSteps

    candidate, index = outcome.candidate, outcome.index
    started = time.perf_counter()
    run = context.start_run(candidate, index)
    outcome.run_id = run.run_id

    def on_progress(event: ProgressEvent) -> None:
        context.on_progress((index + event.progress) / total,
                            {"candidate": f"{index + 1}/{total} {candidate.label}", "candidate_stage": event.stage})

    try:
        steps = TrainingSteps(context.dataset_root, candidate.architecture, dict(candidate.parameters),
                              context.work / f"candidate-{index + 1}", on_progress=on_progress,
                              should_stop=should_stop, data_dir=context.data_dir)
        steps.fit()
        outcome.metrics = {key: value for key, value in steps.evaluate().items()
                           if isinstance(value, int | float | str) and not isinstance(value, bool)}
        steps.export_ir()
        steps.verify_ir()
        outcome.record = EvaluationRecord(context.snapshot_id, steps.shipped_threshold(),
                                          score_items(steps.openvino_dir, context.items, context.fetch))
        outcome.result = steps.result()
        outcome.status = TRAINED
    except TrainingCancelled:
        outcome.status, outcome.reason = STOPPED, "stopped when the time budget was spent"
    except Exception as error:  # noqa: BLE001 - one candidate failing must not end the search
        log.exception("candidate %s failed", candidate.label)
        outcome.status, outcome.reason = FAILED, f"{type(error).__name__}: {error}"[:500]
    outcome.seconds = time.perf_counter() - started
    _log_candidate(run, outcome)
    return outcome


def _log_candidate(run: ModelRun, outcome: CandidateOutcome) -> None:
    run.log_params({"architecture": outcome.candidate.architecture, **outcome.candidate.parameters})
    run.log_metrics({**outcome.metrics, "eval_image_auroc": outcome.eval_auroc, "seconds": outcome.seconds})
    run.client.set_tag(run.run_id, "geti_inspect.candidate.status", outcome.status)
    if outcome.reason:
        run.client.set_tag(run.run_id, "geti_inspect.candidate.reason", outcome.reason)
    run.finish("FINISHED" if outcome.status == TRAINED else "FAILED")


def run_search(spec: SearchSpec, context: SearchContext) -> tuple[CandidateOutcome, list[CandidateOutcome], Choice,
                                                                  str]:
    """Train the candidates in order (each a Prefect task) and choose; returns (chosen, all, choice, metric)."""
    budget = _Budget(spec.time_budget_s)
    total = len(spec.candidates)
    outcomes = [CandidateOutcome(index, candidate) for index, candidate in enumerate(spec.candidates)]

    def should_stop() -> bool:
        return budget.spent() and any(done.status == TRAINED for done in outcomes)

    for index, outcome in enumerate(outcomes):
        if should_stop():
            outcome.reason = f"not started: the time budget of {spec.time_budget_s:g} s was spent"
            continue
        outcomes[index] = outcome = step(f"candidate {index + 1} · {outcome.candidate.label}", train_candidate,
                                         context, outcome, total, should_stop)
        log.info("candidate %s: %s %s", outcome.candidate.label, outcome.status, outcome.summary())
        # The job's metrics list the candidates done so far, so a console can show the race as it runs.
        context.on_progress((index + 1) / total, {"candidates": [done.summary() for done in outcomes[:index + 1]]})
    trained = [outcome for outcome in outcomes if outcome.status == TRAINED]
    if not trained:
        reasons = "; ".join(f"{outcome.candidate.label}: {outcome.reason}" for outcome in outcomes)
        raise RuntimeError(f"no candidate could be trained ({reasons})")
    metric = _usable_metric(spec.decision_metric, trained)
    labels = trained[0].record.labels if trained[0].eval_auroc is not None else None
    choice = choose([Scored(outcome.candidate.label, outcome.value(metric),
                            outcome.record.scores if labels is not None else None) for outcome in trained],
                    metric, labels)
    return trained[choice.index], outcomes, choice, metric


def _usable_metric(wanted: str, trained: list[CandidateOutcome]) -> str:
    """The decision metric when every trained candidate has it, else image AUROC (e.g. pixel metrics need masks)."""
    if all(outcome.value(wanted) is not None for outcome in trained):
        return wanted
    log.warning("decision metric %s is not measured on this evaluation set: choosing by image_auroc", wanted)
    return "image_auroc"


def selection_summary(chosen: CandidateOutcome, choice: Choice, wanted: str, used: str,
                      outcomes: list[CandidateOutcome]) -> dict[str, Any]:
    """Why the chosen candidate won, for the model's and the job's metrics."""
    reason = choice.reason
    if used != wanted:
        reason += f" ({wanted} is not measured on this evaluation set: it needs defect masks; compared by {used})"
    if used == "image_auroc" and chosen.eval_auroc is None:
        reason += (" (the evaluation set has no anomalous images: compared by anomalib's image AUROC on synthetic "
                   "defects)")
    trained = [outcome for outcome in outcomes if outcome.status == TRAINED]
    return {"decision_metric": used, "requested_metric": wanted, "chosen": chosen.candidate.label,
            "chosen_index": chosen.index, "best": trained[choice.best_index].candidate.label,
            "standard_error": choice.standard_error, "reason": reason,
            "eval_images": len(chosen.record.items) if chosen.record is not None else 0}
