"""A machine-local cache of model IRs fetched from object storage, keyed by model id.

Workers may not share a disk with the API, so a live pipeline (and the API, for media predictions)
downloads its model's OpenVINO files (`models/{id}/openvino/`) once per machine. A model's files never change once it is
ready, so a cached copy stays valid; downloads land in a temporary folder that is renamed into
place, so a crash mid-download never leaves a half-written model that looks complete.

The cache keeps the `keep` most recently used models. Pruning a model that a pipeline still runs
is harmless: the compiled model no longer reads its files (Linux keeps unlinked files mapped), and
a later use downloads it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
    def __init__(self, store: ObjectStore, root: Path, keep: int = 8) -> None:
        self.store = store
        self.root = Path(root)
        self.keep = keep

    def path(self, model_id: uuid.UUID | str) -> Path:
        return self.root / str(uuid.UUID(str(model_id)))

    def get(self, model_id: uuid.UUID | str) -> Path:
        """The local folder holding the model's IR, downloaded on first use."""
        target = self.path(model_id)
        if target.is_dir():
            with contextlib.suppress(OSError):
                os.utime(target)  # most recently used: pruned last
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
        self._prune(spare=target)
        return target

    def _prune(self, spare: Path) -> None:
        """Drop the least recently used models beyond `keep` (never `spare`, nor downloads in progress)."""
        cached = [path for path in self.root.iterdir() if path.is_dir() and not path.name.startswith(".")]
        cached.sort(key=lambda path: path.stat().st_mtime, reverse=True)
        for old in [path for path in cached if path != spare][max(self.keep - 1, 0):]:
            shutil.rmtree(old, ignore_errors=True)
            log.info("model cache: dropped %s (keeps %d)", old.name, self.keep)
