"""Local folder backend (the default, under the data dir)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from infra.storage.base import ObjectStore, validate_key

_UNLINK_THREADS = 64
_COPY_CHUNK = 1024 * 1024


class LocalStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"key escapes the storage root: {key!r}")
        return path

    def _file(self, key: str) -> Path:
        # A key that is only a "folder" of other keys is absent, as on S3 (not IsADirectoryError).
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def put(self, key: str, data: bytes) -> None:
        self._write(key, lambda handle: handle.write(data))

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{target.name}")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    def put_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        self._write(key, lambda handle: shutil.copyfileobj(fileobj, handle, _COPY_CHUNK))

    def _write(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename: a reader never sees a half-written object.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        return self._file(key).read_bytes()

    def get_file(self, key: str, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._file(key), path)
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Unlink each file, then drop the folders left empty (once each, deepest first).

        A project's blobs share a few hundred hash folders: resolving and pruning per folder rather
        than per file keeps deleting 100,000 media to seconds.
        """
        folders: dict[str, Path] = {}
        files: list[Path] = []
        for key in keys:
            folder, _, name = validate_key(key).rpartition("/")
            if folder not in folders:
                folders[folder] = self._path(folder) if folder else self.root
            files.append(folders[folder] / name)
        # Each unlink mostly waits on the disk (3.3 ms per file serially, 0.09 ms with 16 threads and 0.05
        # with 64 threads that each take a share of the files, measured on this machine's ext4): overlap them.
        shares = [files[index::_UNLINK_THREADS] for index in range(_UNLINK_THREADS)]
        with ThreadPoolExecutor(max_workers=_UNLINK_THREADS) as pool:
            for _ in pool.map(_unlink_all, shares):
                pass
        for folder in sorted(folders.values(), key=lambda path: len(path.parts), reverse=True):
            self._prune(folder)

    def _prune(self, folder: Path) -> None:
        """Drop now-empty folders up to the root so deleted projects leave nothing behind."""
        while folder != self.root and folder.is_dir() and _is_empty(folder):
            folder.rmdir()
            folder = folder.parent

    def list(self, prefix: str = "") -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _is_empty(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return next(entries, None) is None
