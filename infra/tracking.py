"""MLflow helpers: one experiment per project, one run per trained model, one registered model per project.

The MLflow UI should read like the project: an experiment carries the project's name (suffixed
with the short project id only when another experiment already has that name) and a tag with the
project id, by which it is found again after a rename; runs are named after their models.
MLflow is imported lazily: the API and the supervisor only need the addresses.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")
_MAX_PARAM = 6000  # MLflow's limit on a parameter value


def tracking_uri(settings: Settings) -> str:
    return settings.mlflow_tracking_uri or f"http://{settings.services_address}:{settings.mlflow_port}"


class TrackingUnavailable(RuntimeError):
    """MLflow could not be reached, or refused a call, after the client's own retries."""


def is_tracking_failure(error: BaseException) -> bool:
    """An error raised by the MLflow client: its own exception or the HTTP transport's."""
    import requests
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException | requests.RequestException)


PROJECT_TAG = "geti_inspect.project_id"


def legacy_experiment_name(project_id: uuid.UUID | str) -> str:
    """The name experiments had before they carried the project's name (still found and renamed)."""
    return f"geti-inspect/project-{project_id}"


def experiment_name(client: MlflowClient, project_id: uuid.UUID | str, project_name: str,
                    experiment_id: str | None = None) -> str:
    """The project's name, or `<name> (<short id>)` when another experiment holds that name."""
    name = " ".join(project_name.split())[:200] or "project"  # MLflow stores at most 256 characters
    for candidate in (name, f"{name} ({str(project_id)[:8]})", f"{name} ({project_id})"):
        holder = client.get_experiment_by_name(candidate)  # deleted experiments keep their names too
        if holder is None or holder.experiment_id == experiment_id:
            return candidate
    raise ValueError(f"no free experiment name for project {project_id}")


def find_project_experiment(client: MlflowClient, project_id: uuid.UUID | str) -> Any | None:
    from mlflow.entities import ViewType

    found = client.search_experiments(view_type=ViewType.ALL, max_results=1,
                                      filter_string=f"tags.`{PROJECT_TAG}` = '{project_id}'")
    return found[0] if found else client.get_experiment_by_name(legacy_experiment_name(project_id))


def project_experiment(client: MlflowClient, project_id: uuid.UUID | str, project_name: str) -> str:
    """The id of the project's experiment, created or renamed (and restored) as needed."""
    from mlflow.exceptions import MlflowException

    experiment = find_project_experiment(client, project_id)
    if experiment is None:
        try:
            return client.create_experiment(experiment_name(client, project_id, project_name),
                                            tags={PROJECT_TAG: str(project_id)})
        except MlflowException:  # created concurrently by another run
            experiment = find_project_experiment(client, project_id)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    sync_experiment_name(client, experiment, project_id, project_name)
    return experiment.experiment_id


def sync_experiment_name(client: MlflowClient, experiment: Any, project_id: uuid.UUID | str, project_name: str) -> None:
    if experiment.tags.get(PROJECT_TAG) != str(project_id):
        client.set_experiment_tag(experiment.experiment_id, PROJECT_TAG, str(project_id))
    wanted = experiment_name(client, project_id, project_name, experiment.experiment_id)
    if experiment.name != wanted:
        client.rename_experiment(experiment.experiment_id, wanted)


def rename_project_experiment(uri: str, project_id: uuid.UUID | str, project_name: str) -> bool:
    """Keep the experiment's name in step with a renamed project; False when it has none or MLflow is down.

    Best effort: the project's next training renames the experiment too. A quick health probe first,
    because the MLflow client retries an unreachable server for minutes.
    """
    import httpx
    from mlflow import MlflowClient

    if uri.startswith("http"):
        try:
            httpx.get(f"{uri.rstrip('/')}/health", timeout=2).raise_for_status()
        except httpx.HTTPError:
            return False
    client = MlflowClient(tracking_uri=uri)
    experiment = find_project_experiment(client, project_id)
    if experiment is None:
        return False
    sync_experiment_name(client, experiment, project_id, project_name)
    return True


def registered_model_name(project_id: uuid.UUID | str) -> str:
    return f"geti-inspect-project-{project_id}"


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as dotted keys (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def metric_key(name: str) -> str:
    return _UNSAFE_KEY.sub("_", name)


class ModelRun:
    """The MLflow run of one model: params, metrics, artifacts, the registered version."""

    def __init__(self, uri: str, project_id: uuid.UUID | str, model_id: uuid.UUID | str, run_name: str,
                 tags: dict[str, str] | None = None, project_name: str | None = None) -> None:
        from mlflow import MlflowClient

        self.client: MlflowClient = MlflowClient(tracking_uri=uri)
        self.model_name = registered_model_name(project_id)
        self.project_name = project_name or f"project {str(project_id)[:8]}"
        self.version: str | None = None
        self.experiment_id = project_experiment(self.client, project_id, self.project_name)
        run_tags = {PROJECT_TAG: str(project_id), "geti_inspect.model_id": str(model_id),
                    "geti_inspect.project_name": self.project_name, **(tags or {})}
        self.run = self.client.create_run(self.experiment_id, run_name=run_name, tags=run_tags)
        self.run_id: str = self.run.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        if flat:
            self.client.log_batch(self.run_id, params=[Param(metric_key(key), str(value)[:_MAX_PARAM])
                                                       for key, value in flat.items()])

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Finite numbers as metrics; text values (e.g. ``pixel_metrics: "no masks"``) as run tags."""
        from mlflow.entities import Metric, RunTag
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        batch = [Metric(metric_key(key), float(value), now, step or 0) for key, value in metrics.items()
                 if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)]
        tags = [RunTag(metric_key(key), value) for key, value in metrics.items() if isinstance(value, str)]
        if batch or tags:
            self.client.log_batch(self.run_id, metrics=batch, tags=tags)

    def log_history(self, history: list[dict[str, float]]) -> None:
        """Per-epoch metrics (each entry holds its `epoch`), in batches of MLflow's 1000-metric limit."""
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        batch = [Metric(metric_key(key), float(value), now, int(entry.get("epoch", step)))
                 for step, entry in enumerate(history) for key, value in entry.items()
                 if key != "epoch" and math.isfinite(value)]
        for start in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[start:start + 1000])

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, local_file: Path, artifact_path: str) -> None:
        self.client.log_artifact(self.run_id, str(local_file), artifact_path)

    def register(self, artifact_path: str, description: str | None = None) -> str:
        """Register the logged folder as a new model version.

        Not `mlflow.register_model("runs:/...")`: for plain logged files it fails and leaves an
        empty registered model behind (facts).
        """
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException:
            # Another run may create it at the same moment: that is fine.
            with contextlib.suppress(MlflowException):
                self.client.create_registered_model(
                    self.model_name, description=f"Geti Inspect models of project {self.project_name!r}",
                    tags={PROJECT_TAG: self.run.data.tags.get(PROJECT_TAG, "")})
        version = self.client.create_model_version(self.model_name, source=f"{self.run.info.artifact_uri}/"
                                                   f"{artifact_path}", run_id=self.run_id, description=description)
        self.version = str(version.version)
        return self.version

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def discard(self, status: str = "KILLED") -> None:
        """Undo what this run left: the registered version and the run itself (soft delete; `mlflow gc` purges)."""
        if self.version is not None:
            self.client.delete_model_version(self.model_name, self.version)
            self.version = None
        self.client.set_terminated(self.run_id, status=status)
        self.client.delete_run(self.run_id)


def log_retraining_decision(uri: str, run_id: str, metrics: dict[str, Any]) -> None:
    """The retraining verdict on the candidate's run: decision and reason as tags, both scores as metrics."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    scores = {f"retraining.{key}": metrics.get(key) for key in
              ("candidate_image_auroc", "champion_image_auroc", "eval_images")}
    MlflowClient(tracking_uri=uri).log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in scores.items()
                 if isinstance(value, int | float) and math.isfinite(value)],
        tags=[RunTag("geti_inspect.retraining.decision", str(metrics.get("decision"))),
              RunTag("geti_inspect.retraining.reason", str(metrics.get("reason"))[:5000]),
              RunTag("geti_inspect.retraining.champion_model_id", str(metrics.get("champion_model_id")))])
