"""The models pages in Chromium on the session platform: the list with real trained models (copies of the
session's `trained_model` in its project, so no extra training), a failed training shown with its error,
promote, compare with heat maps, the detail page's evaluation drawn as SVG, export with a real export job
and its download, and delete after a confirmation."""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from infra.database.engine import session_scope
from infra.database.models import Model
from tests.console.conftest import BrowserPage, ConsoleServer

pytestmark = pytest.mark.slow

FAILURE = "CUDA out of memory while fitting the coreset (tried to allocate 2.00 GiB)"
SELECTION = {
    "candidates": [{"architecture": "padim", "parameters": {"backbone": "mobilenetv2_100"}, "status": "trained",
                    "image_auroc": 0.97, "seconds": 12.5},
                   {"architecture": "patchcore", "parameters": {"backbone": "mobilenetv2_100"}, "status": "stopped",
                    "image_auroc": None, "seconds": 30.0, "reason": "time budget spent"}],
    "selection": {"decision_metric": "image_auroc", "requested_metric": "image_auroc",
                  "chosen": "padim · mobilenetv2_100", "chosen_index": 0, "best": "padim · mobilenetv2_100",
                  "standard_error": 0.02, "reason": "the only trained candidate", "eval_images": 20},
}


@pytest.fixture(scope="module")
def models_project(platform: Any, platform_console: ConsoleServer, trained_model: Any) -> Iterator[dict[str, Any]]:
    """Two ready models (copies of the trained one, with its snapshot, job and MLflow run) and a failed one, in
    the trained model's project (its evaluation images and heat maps are there), written as the training flow
    leaves them. Afterwards they are deleted and the project's champion is the one it had before."""
    project_id = trained_model.project["id"]
    with platform_console.api() as api:
        before = [model["id"] for model in api.get(f"/api/projects/{project_id}/models").json() if model["champion"]]
    ids: dict[str, Any] = {"project": project_id}
    for key, name in (("first", "Twin A"), ("second", "Twin B")):
        model_id = trained_model.copy_model(platform, project_id)
        with session_scope(platform.settings.resolved_database_url) as session:
            original = session.get(Model, uuid.UUID(trained_model.model_id))
            twin = session.get(Model, uuid.UUID(model_id))
            twin.name, twin.snapshot_id = name, original.snapshot_id
            twin.job_id, twin.mlflow_run_id = original.job_id, original.mlflow_run_id
            ids.update(metrics=dict(original.metrics), mlflow_run_id=original.mlflow_run_id,
                       job_id=str(original.job_id))
            if key == "first":  # as an automatic selection leaves its model (flows/training/search.py)
                twin.metrics = {**original.metrics, **SELECTION}
        ids[key] = model_id
    with session_scope(platform.settings.resolved_database_url) as session:
        failed = Model(project_id=uuid.UUID(project_id), name="Broken", architecture="patchcore",
                       status="failed", error=FAILURE, parameters={"backbone": "mobilenetv2_100"})
        session.add(failed)
        session.flush()
        ids["failed"] = str(failed.id)
    yield ids
    with platform_console.api() as api:
        for key in ("first", "second", "failed"):
            api.delete(f"/api/models/{ids[key]}")
        for model_id in before:
            assert api.post(f"/api/models/{model_id}/promote").status_code == 200


def test_models_list_promote_compare_and_detail(platform_page: BrowserPage, models_project: dict,
                                                trained_model: Any, platform_console: ConsoleServer) -> None:
    page, ids = platform_page.page, models_project
    platform_page.goto(f"/ui/projects/{ids['project']}")
    page.get_by_role("link", name="Models", exact=True).click()
    page.wait_for_url(f"**/ui/projects/{ids['project']}/models")
    assert page.locator(f"#model-{ids['first']}, #model-{ids['second']}, #model-{ids['failed']}").count() == 3

    failed = page.locator(f"#model-{ids['failed']}")
    assert "failed" in failed.locator('[data-field="status"]').inner_text()
    assert failed.locator('[data-field="error"]').inner_text() == FAILURE
    assert failed.get_by_role("button", name="Promote").count() == 0

    first = page.locator(f"#model-{ids['first']}")
    counts = trained_model.counts
    train = counts[("normal", "train")]
    evaluation = counts[("normal", "eval")] + counts[("anomalous", "train")] + counts[("anomalous", "eval")]
    row = first.inner_text()
    assert "padim · mobilenetv2_100" in row and "ready" in row and f"{train} / {evaluation}" in row
    assert first.locator('[data-metric="image_auroc"]').inner_text() == f"{ids['metrics']['image_auroc']:.3f}"
    run_id, job_id = ids["mlflow_run_id"], ids["job_id"]
    assert first.get_by_role("link", name="MLflow run").get_attribute("href").endswith(run_id)
    assert first.get_by_role("link", name="Prefect run").get_attribute("href").endswith(f"/runs/flow-run/{job_id}")

    # Promote the second: the page says so in words, and the API agrees.
    with page.expect_navigation():
        page.locator(f"#model-{ids['second']}").get_by_role("button", name="Promote").click()
    assert "is now the champion" in page.locator(".notice").inner_text()
    assert "champion" in page.locator(f"#model-{ids['second']} [data-field='champion']").inner_text()
    assert page.locator("[data-field='champion']").count() == 1
    with platform_console.api() as api:
        assert api.get(f"/api/models/{ids['second']}").json()["champion"] is True

    # Compare the two ready models, chosen with the checkboxes.
    page.get_by_label("Compare Twin A").check()
    page.get_by_label("Compare Twin B").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Compare selected").click()
    assert "/models/compare?" in page.url
    table = page.locator("#comparison")
    assert "twin a" in table.inner_text().lower() and "twin b" in table.inner_text().lower()
    assert table.locator('[data-metric="image_auroc"] td').count() == 2
    shown = page.locator("#disagreements article.disagreement")
    assert shown.count() >= 1
    assert shown.first.locator("img.heatmap").count() == 2
    page.wait_for_function("() => [...document.querySelectorAll('#disagreements article')[0]"
                           ".querySelectorAll('img.heatmap')].every((img) => img.complete && img.naturalWidth > 0)",
                           timeout=60_000)

    # The detail page: the evaluation drawn as SVG, the counts at the threshold adding up to the eval set.
    page.get_by_role("link", name="Twin A").first.click()
    page.wait_for_url(f"**/models/{ids['first']}")
    assert page.locator("svg.roc polyline.curve").count() == 1
    assert page.locator("svg.histogram rect.bar").count() >= 2
    assert page.locator("svg.histogram line.threshold").count() == 1
    confusion = {key: int(page.locator(f'#confusion [data-field="{key}"]').inner_text().split()[0])
                 for key in ("tp", "tn", "fp", "fn")}
    assert sum(confusion.values()) == evaluation
    assert page.locator("#train-count").inner_text() == str(train)
    # What the automatic selection tried, and why this one won.
    assert "Chose padim · mobilenetv2_100 by image_auroc: the only trained candidate" in page.locator(
        "#selection").inner_text()
    candidates = page.locator("#candidates tbody tr")
    assert candidates.count() == 2 and "chosen" in candidates.nth(0).inner_text()
    assert "stopped" in candidates.nth(1).inner_text() and "time budget spent" in candidates.nth(1).inner_text()


def test_export_download_and_delete_with_confirmation(platform_page: BrowserPage, models_project: dict,
                                                      platform_console: ConsoleServer, tmp_path: Any) -> None:
    page, ids = platform_page.page, models_project
    platform_page.goto(f"/ui/projects/{ids['project']}/models")
    row = page.locator(f"#model-{ids['first']}")

    # A precision that does not go with the format: the message next to the field, no job started.
    platform_page.record.expect_error("422")
    row.get_by_text("Export…").click()
    row.get_by_label("Format").select_option("onnx")
    row.get_by_label("Precision").select_option("int8")
    with page.expect_navigation():
        row.get_by_role("button", name="Export").click()
    message = page.locator(f"#model-{ids['first']} .field-error").inner_text()
    assert "int8 applies to the openvino format only" in message

    row = page.locator(f"#model-{ids['first']}")
    row.get_by_label("Format").select_option("openvino")
    row.get_by_label("Precision").select_option("fp32")
    with page.expect_navigation():
        row.get_by_role("button", name="Export").click()
    status = page.locator("#export-status")
    assert "Exporting Twin A as openvino fp32" in status.inner_text()
    page.wait_for_function("() => document.getElementById('export-status').dataset.status === 'completed'",
                           timeout=120_000)
    with page.expect_download() as download_info:
        page.locator("#export-download").click()
    download = download_info.value
    assert download.suggested_filename == "Twin_A-openvino.zip"
    archive = tmp_path / "model.zip"
    download.save_as(archive)
    assert {"model.xml", "model.bin"} <= set(zipfile.ZipFile(archive).namelist())

    # Delete the champion: a confirmation page first, which says what it means.
    page.locator(f"#model-{ids['second']}").get_by_role("link", name="Delete…").click()
    page.wait_for_url(f"**/ui/models/{ids['second']}/delete")
    assert "It is the project's champion" in page.locator("main").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Delete model").click()
    assert "was deleted" in page.locator(".notice").inner_text()
    assert page.locator(f"#model-{ids['second']}").count() == 0
    with platform_console.api() as api:
        assert api.get(f"/api/models/{ids['second']}").status_code == 404
