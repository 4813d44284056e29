"""Where a model's files live in object storage, so API, flows and inference workers agree.

Workers may not share a disk with the API: everything a model needs is under `models/{id}/`.

    models/{id}/openvino/<files>            the OpenVINO IR written by training (model.xml + .bin, metadata)
    models/{id}/checkpoint/model.ckpt       the Lightning checkpoint
    models/{id}/evaluation.json             the IR's score of each evaluation item (infra/evaluation.py)
    models/{id}/exports/<format>[-<compression>].zip   archives made by the export job
"""

from __future__ import annotations

import uuid
from pathlib import Path

from infra.storage import ObjectStore

EXPORT_FORMATS = ("openvino", "onnx", "pytorch")
COMPRESSIONS = ("fp16", "int8")


def model_prefix(model_id: uuid.UUID | str) -> str:
    return f"models/{model_id}/"


def openvino_prefix(model_id: uuid.UUID | str) -> str:
    return f"models/{model_id}/openvino/"


def checkpoint_key(model_id: uuid.UUID | str) -> str:
    return f"models/{model_id}/checkpoint/model.ckpt"


def evaluation_key(model_id: uuid.UUID | str) -> str:
    return f"models/{model_id}/evaluation.json"


def export_name(export_format: str, compression: str | None = None) -> str:
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {export_format!r} (one of {', '.join(EXPORT_FORMATS)})")
    if compression is not None and (export_format != "openvino" or compression not in COMPRESSIONS):
        raise ValueError(f"compression {compression!r} applies to openvino only (one of {', '.join(COMPRESSIONS)})")
    return f"{export_format}-{compression}" if compression else export_format


def archive_key(model_id: uuid.UUID | str, export_format: str, compression: str | None = None) -> str:
    return f"models/{model_id}/exports/{export_name(export_format, compression)}.zip"


def upload_folder(store: ObjectStore, folder: Path, prefix: str) -> list[str]:
    """Every file under `folder` as `prefix` + its relative path; returns the keys."""
    keys = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            key = prefix + path.relative_to(folder).as_posix()
            store.put_file(key, path)
            keys.append(key)
    return keys


def download_folder(store: ObjectStore, prefix: str, folder: Path) -> list[Path]:
    paths = []
    for key in sorted(store.list(prefix)):
        paths.append(store.get_file(key, Path(folder) / key.removeprefix(prefix)))
    return paths
