"""The project's champion: the one model its live lines follow, and the rule that picks it.

Used by the API (`POST /models/{id}/promote`) and by the retraining flow. Promotion flips the
`champion` flag (a partial unique index keeps one per project), points every pipeline that
follows the champion at the new model (a running one swaps it live, see `flows/inference.py`),
and moves the MLflow registered-model alias `champion` to the model's version. Deleting the
champion removes that alias (`withdraw_alias`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infra.database.models import Model, Pipeline

CHAMPION_ALIAS = "champion"
# 0.90 + 0.05 is 0.9500000000000001 in floats: a candidate at exactly 0.95 meets that margin.
_TOLERANCE = 1e-9
Decision = Literal["promoted", "kept", "skipped"]


class NotPromotable(RuntimeError):
    """Only a ready model can become the champion."""


class AliasNotMoved(RuntimeError):
    """MLflow could not move the `champion` alias (the caller rolls the promotion back)."""


def current_champion(session: Session, project_id: uuid.UUID) -> Model | None:
    return session.scalar(select(Model).where(Model.project_id == project_id, Model.champion.is_(True)))


def promote(session: Session, model: Model, tracking_uri: str | None) -> Model:
    """Make `model` its project's champion (the caller commits). Idempotent.

    The alias is moved last, once the rows are flushed: when MLflow refuses, the caller rolls back
    and nothing changed. MLflow's alias is a pointer, so moving it again on a retry is harmless.
    """
    if model.status != "ready":
        raise NotPromotable(f"Model {model.id} is {model.status}, not ready")
    # Clear the old champion first: the unique index allows one flagged row at any moment.
    session.execute(update(Model).where(Model.project_id == model.project_id, Model.id != model.id,
                                        Model.champion.is_(True)).values(champion=False))
    session.flush()
    model.champion = True
    session.execute(update(Pipeline).where(Pipeline.project_id == model.project_id,
                                           Pipeline.follow_champion.is_(True)).values(model_id=model.id))
    session.flush()
    if tracking_uri and model.mlflow_model_name and model.mlflow_model_version:
        from mlflow import MlflowClient

        try:
            MlflowClient(tracking_uri).set_registered_model_alias(model.mlflow_model_name, CHAMPION_ALIAS,
                                                                  model.mlflow_model_version)
        except Exception as error:  # MLflow raises its own, requests' and OS errors alike
            raise AliasNotMoved(f"MLflow could not set the champion alias: {error}") from error
    return model


def withdraw_alias(model: Model, tracking_uri: str | None) -> None:
    """Remove MLflow's `champion` alias while it points at `model`'s version (the champion is being deleted).

    Called once the delete is flushed, before the commit, so a refusal rolls the delete back, as
    for `promote`. An alias already moved elsewhere (in the MLflow UI) is left alone.
    """
    if not (model.champion and tracking_uri and model.mlflow_model_name and model.mlflow_model_version):
        return
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    try:
        current = client.get_model_version_by_alias(model.mlflow_model_name, CHAMPION_ALIAS)
        if str(current.version) == str(model.mlflow_model_version):
            client.delete_registered_model_alias(model.mlflow_model_name, CHAMPION_ALIAS)
    except Exception as error:  # MLflow raises its own, requests' and OS errors alike
        if isinstance(error, MlflowException) and error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return  # no alias, or no registered model any more: nothing to remove
        raise AliasNotMoved(f"MLflow could not remove the champion alias: {error}") from error


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


def decide(candidate_auroc: float | None, champion_auroc: float | None, has_champion: bool, promotion: str,
           min_improvement: float, metric: str = "image AUROC") -> Verdict:
    """Promote when there is no champion, or (auto) when the candidate beats it by `min_improvement`.

    Scores are `metric` (image AUROC unless a pixel metric decides) of both IRs on the same evaluation
    items; None when that set lacks normal or anomalous images, and then a champion is never replaced
    automatically.
    """
    if not has_champion:
        return Verdict("promoted", "the project had no champion")
    if promotion != "auto":
        return Verdict("kept", "promotion is manual: promote the candidate with POST /models/{id}/promote")
    if candidate_auroc is None or champion_auroc is None:
        return Verdict("kept", "the evaluation set needs normal and anomalous images to compare the models")
    if candidate_auroc >= champion_auroc + min_improvement - _TOLERANCE:
        return Verdict("promoted", f"candidate {metric} {candidate_auroc:.4f} >= champion {champion_auroc:.4f} "
                                   f"+ {min_improvement:g}")
    return Verdict("kept", f"candidate {metric} {candidate_auroc:.4f} < champion {champion_auroc:.4f} "
                           f"+ {min_improvement:g}")
