"""Export flow: package a trained model as a zip archive in object storage.

The archive key is fixed per (model, format, compression), so the API answers 200 once it exists
and a repeated request never redoes the work.
"""

from __future__ import annotations

import logging
import uuid
import zipfile
from pathlib import Path

from prefect import flow

from flows.common import JobProgress, flow_settings, scratch, step
from flows.run_names import export_run_name
from infra.database.engine import session_scope
from infra.database.models import Model
from infra.model_files import archive_key, checkpoint_key, download_folder, export_name, openvino_prefix
from infra.storage import ObjectStore, build_store

WARM_START_IMPORTS = ("flows.training.export",)  # see infra/orchestration/warm_engine.py

log = logging.getLogger(__name__)


class ExportFlowError(RuntimeError):
    pass


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder).as_posix())
    return archive


def _download_ir(store: ObjectStore, model_id: str, out_dir: Path) -> Path:
    download_folder(store, openvino_prefix(model_id), out_dir)
    return out_dir


def _reexport(store: ObjectStore, model_id: str, architecture: str, parameters: dict, format: str,  # noqa: A002
              work: Path, data_dir: Path) -> Path:
    from flows.training.build import UnsafeCheckpoint  # torch and anomalib: only when re-exporting
    from flows.training.export import export
    from infra.anomaly.backbones import hub_cache_dir
    from infra.anomaly.imported_weights import sync_imported

    sync_imported(store, hub_cache_dir(data_dir))  # the model is rebuilt with its backbone's weights first
    key = checkpoint_key(model_id)
    checkpoint = store.get_file(key, work / "model.ckpt")
    try:
        return export(checkpoint, architecture, parameters, format, work / "out", data_dir=data_dir)
    except UnsafeCheckpoint as error:  # the job fails naming the stored file, so an operator can look at it
        raise ExportFlowError(f"refused to load checkpoint {key} of model {model_id}: {error}") from None


def _compress(ir_dir: Path, compression: str, out_dir: Path) -> Path:
    from flows.training.export import compress_ir  # openvino (and NNCF for int8): only when compressing

    return compress_ir(ir_dir / "model.xml", compression, out_dir)


def _upload_archive(store: ObjectStore, key: str, out_dir: Path, archive: Path) -> None:
    store.put_file(key, zip_folder(out_dir, archive))


@flow(name="export-model", flow_run_name=export_run_name, log_prints=True)
def export_model(model_id: str, format: str, compression: str | None = None) -> str:  # noqa: A002 - API name
    """Build `models/{id}/exports/<format>[-<compression>].zip`: OpenVINO from the stored IR (its weights
    compressed on request), ONNX and PyTorch re-exported from the checkpoint."""
    if compression is not None and format != "openvino":
        raise ExportFlowError(f"compression {compression!r} applies to the openvino format only, not {format!r}")
    settings = flow_settings()
    store = build_store(settings)
    key = archive_key(model_id, format, compression)
    progress = JobProgress(f"Exporting model {model_id} as {export_name(format, compression)}")
    if store.exists(key):
        progress.done()
        return key
    with session_scope(settings.resolved_database_url) as session:
        model = session.get(Model, uuid.UUID(model_id))
        if model is None or model.status != "ready":
            raise ExportFlowError(f"model {model_id} is not ready (missing or still training)")
        architecture, parameters = model.architecture, dict(model.parameters or {})
    with scratch(settings, "export-") as tmp:
        work = Path(tmp)
        progress.update(0.05, stage="download")
        if format == "openvino":
            # Training stored this very IR (batch 1, verified): package it as it is, or compress its weights.
            out_dir = step("download IR", _download_ir, store, model_id, work / "ir")
            if compression is not None:
                progress.update(0.2, stage="export")
                out_dir = step(f"export {export_name(format, compression)}", _compress, out_dir, compression,
                               work / "out")
        else:
            progress.update(0.2, stage="export")
            out_dir = step(f"export {export_name(format, compression)}", _reexport, store, model_id, architecture,
                           parameters, format, work, settings.resolved_data_dir)
        progress.update(0.9, stage="upload")
        step("upload files", _upload_archive, store, key, out_dir, work / "archive.zip")
    with session_scope(settings.resolved_database_url) as session:
        if session.get(Model, uuid.UUID(model_id)) is None:  # deleted meanwhile: leave no orphan archive
            store.delete(key)
            raise ExportFlowError(f"model {model_id} was deleted during the export")
    log.info("stored %s", key)
    progress.done()
    return key
