"""What a finished training tells people: the MLflow version description and the run's markdown report.

Both name the model and project, the architecture and backbone, the data the model saw and how it
scored (image AUROC first: F1 depends on a threshold chosen on few images).
"""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact

from infra.tracking import ModelRun
from infra.ui_links import UiLinks

METRIC_ORDER = ("image_auroc", "image_f1", "pixel_metrics", "pixel_auroc", "aupro", "pixel_f1", "synthetic_pixel_auroc")


def _data_line(dataset: dict[str, Any]) -> str:
    good = dataset.get("normal", 0) + dataset.get("normal_eval", 0)
    line = (f"{dataset.get('train_images', '?')} training images; evaluated on {dataset.get('test_images', '?')} "
            f"({good} good, {dataset.get('anomalous', '?')} anomalous in the snapshot")
    if dataset.get("synthetic_anomalies"):
        line += ", synthetic anomalies for the test"
    return line + ")"


def version_description(model_name: str, project_name: str, parameters: dict[str, Any], architecture: str,
                        dataset: dict[str, Any], metrics: dict[str, float | str]) -> str:
    """One paragraph for the MLflow model version: what it is, what it saw, how it scored."""
    backbone = parameters.get("backbone")
    auroc = metrics.get("image_auroc")
    parts = [f"{architecture} model {model_name!r} of project {project_name!r}",
             f"backbone {backbone}" if backbone else "no backbone", _data_line(dataset),
             f"image AUROC {auroc:.3f}" if auroc is not None else "image AUROC not measured"]
    pixel = [f"{label} {metrics[key]:.3f}" for key, label in (("pixel_auroc", "pixel AUROC"), ("aupro", "AUPRO"))
             if isinstance(metrics.get(key), float)]
    parts.append(", ".join(pixel) + " on real masks" if pixel
                 else f"pixel metrics: {metrics.get('pixel_metrics', 'none')}")
    return "; ".join(parts) + "."


def _cell(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(model_id: str, model_name: str, project_name: str, architecture: str,
                     parameters: dict[str, Any], dataset: dict[str, Any], metrics: dict[str, float | str],
                     timings: dict[str, float], mlflow_run_url: str | None, api_model_url: str) -> str:
    ordered = [key for key in METRIC_ORDER if key in metrics] + sorted(set(metrics) - set(METRIC_ORDER))
    lines = [f"# {model_name} · {project_name}", "", f"{architecture} model `{model_id}`.", "",
             "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {_cell(key)} | {_cell(metrics[key])} |" for key in ordered]
    lines += ["", "## Parameters", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in sorted(parameters.items())]
    lines += ["", "## Data", "", "| images | count |", "|---|---|"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in dataset.items()]
    lines += ["", "## Time (s)", "", "| phase | seconds |", "|---|---|"]
    lines += [f"| {_cell(key.removeprefix('time_'))} | {_cell(value)} |" for key, value in timings.items()]
    lines += ["", "## Links", ""]
    if mlflow_run_url:
        lines.append(f"- [MLflow run]({mlflow_run_url})")
    lines.append(f"- [Model in the API]({api_model_url})")
    return "\n".join(lines) + "\n"


def publish_summary(model_id: str, model_name: str, project_name: str, architecture: str,
                    parameters: dict[str, Any], dataset: dict[str, Any], metrics: dict[str, float | str],
                    timings: dict[str, float], run: ModelRun | None, links: UiLinks) -> None:
    """The run's markdown artifact (Prefect UI, Artifacts tab), keyed per model."""
    markdown = summary_markdown(model_id, model_name, project_name, architecture, parameters, dataset, metrics,
                                timings, links.mlflow_run(run.run_id) if run is not None else None,
                                links.api_model(model_id))
    create_markdown_artifact(markdown=markdown, key=f"training-{model_id}",
                             description=f"Training of {model_name!r} ({project_name})")
