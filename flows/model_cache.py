"""A worker-local cache of model IRs fetched from object storage, keyed by model id.

Workers may not share a disk with the API, so a live pipeline downloads its model's OpenVINO
files (`models/{id}/openvino/`) once per machine. A model's files never change once it is
ready, so a cached copy stays valid; downloads land in a temporary folder that is renamed into
place, so a crash mid-download never leaves a half-written model that looks complete.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from pathlib import Path

from infra.model_files import download_folder, openvino_prefix
from infra.storage import ObjectStore

log = logging.getLogger(__name__)


class ModelFilesMissing(RuntimeError):
    """Object storage holds no OpenVINO files for the model."""


class ModelCache:
    def __init__(self, store: ObjectStore, root: Path) -> None:
        self.store = store
        self.root = Path(root)

    def path(self, model_id: uuid.UUID | str) -> Path:
        return self.root / str(uuid.UUID(str(model_id)))

    def get(self, model_id: uuid.UUID | str) -> Path:
        """The local folder holding the model's IR, downloaded on first use."""
        target = self.path(model_id)
        if target.is_dir():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{target.name}-"))
        try:
            if not download_folder(self.store, openvino_prefix(model_id), staging):
                raise ModelFilesMissing(f"no OpenVINO files for model {model_id} in storage "
                                        f"({openvino_prefix(model_id)})")
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():  # not just another process that finished the same download first
                    raise
            else:
                log.info("model %s cached at %s", model_id, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target
