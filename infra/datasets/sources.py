"""Where an import's files come from: a zip archive or a server folder, read safely.

Nothing is ever extracted to a path: files are read into memory one at a time, each bounded. What makes
the whole import refused (:class:`ImportRefused`, a 422 at the API and a failed job in the flow): not a
zip, more unpacked bytes or files than the settings allow, an archive that unpacks to more than
``MAX_RATIO`` times its size (a zip bomb), a folder outside ``INSPECT_ALLOWED_PATHS``. What refuses one
file only (listed in :attr:`DatasetSource.refused`, or raised as :class:`FileRefused` by ``read``): a
path that escapes the root, a symbolic link, an encrypted or damaged entry, a file larger than one upload
may be, anything that is not a regular file.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import BinaryIO

from infra.configs.confinement import Confinement, NotAllowed
from infra.datasets.layout import Refusal
from infra.settings import Settings

# An archive may unpack to at most this many times its packed size (images barely compress: ~1x).
MAX_RATIO = 100
RATIO_APPLIES_ABOVE = 64 * 1024 * 1024  # small archives cannot bomb anything
_DRIVE = re.compile(r"^[A-Za-z]:")


class ImportRefused(ValueError):
    """The whole import is refused; the message says why."""


class FileRefused(ValueError):
    """One file cannot be read; the message says why."""


@dataclass(frozen=True)
class ImportLimits:
    max_total_bytes: int
    max_files: int
    max_file_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ImportLimits:
        return cls(settings.max_import_bytes, settings.max_import_files, settings.max_upload_bytes)


class DatasetSource(ABC):
    """The readable files of an import (``names``, POSIX relative paths) and the ones refused upfront."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.refused: list[Refusal] = []

    @abstractmethod
    def read(self, name: str) -> bytes:
        """The file's bytes, or FileRefused."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release what the source holds open."""

    def __enter__(self) -> DatasetSource:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
                 ) -> None:
        self.close()


def _unsafe(name: str) -> bool:
    parts = name.split("/")
    return name.startswith("/") or bool(_DRIVE.match(name)) or any(part in ("", ".", "..") for part in parts)


class ZipSource(DatasetSource):
    """The members of a zip archive (read from its central directory; the file object stays open)."""

    def __init__(self, fileobj: BinaryIO, limits: ImportLimits) -> None:
        super().__init__()
        self._members: dict[str, zipfile.ZipInfo] = {}
        try:
            self.archive = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise ImportRefused(f"not a zip archive: {error}") from error
        self.max_file_bytes = limits.max_file_bytes
        try:
            self._check(limits)
        except BaseException:
            self.archive.close()
            raise

    def _check(self, limits: ImportLimits) -> None:
        members = [info for info in self.archive.infolist() if not info.is_dir()]
        if len(members) > limits.max_files:
            raise ImportRefused(f"the archive holds {len(members)} files, more than INSPECT_MAX_IMPORT_FILES "
                                f"({limits.max_files})")
        unpacked = sum(info.file_size for info in members)
        packed = sum(info.compress_size for info in members)
        if unpacked > limits.max_total_bytes:
            raise ImportRefused(f"the archive unpacks to {unpacked} bytes, more than INSPECT_MAX_IMPORT_BYTES "
                                f"({limits.max_total_bytes})")
        if unpacked > RATIO_APPLIES_ABOVE and unpacked > MAX_RATIO * max(packed, 1):
            raise ImportRefused(f"the archive unpacks to {unpacked / max(packed, 1):.0f} times its size (more than "
                                f"{MAX_RATIO}): refused as a zip bomb")
        for info in members:
            name = info.filename.replace("\\", "/")
            reason = self._problem(name, info)
            if reason is not None:
                self.refused.append(Refusal(name, reason))
                continue
            self._members[name] = info
            self.names.append(name)

    def _problem(self, name: str, info: zipfile.ZipInfo) -> str | None:
        if _unsafe(name):
            return "the path escapes the dataset root (absolute, '..' or empty parts)"
        if stat.S_ISLNK(info.external_attr >> 16):
            return "a symbolic link"
        if info.flag_bits & 0x1:
            return "encrypted"
        if info.file_size > self.max_file_bytes:
            return f"larger than one upload may be ({info.file_size} > {self.max_file_bytes} bytes)"
        if name in self._members:
            return "appears twice in the archive"
        return None

    def read(self, name: str) -> bytes:
        info = self._members[name]
        try:
            with self.archive.open(info) as member:
                data = member.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError) as error:
            raise FileRefused(f"damaged or unsupported archive entry: {error}") from error
        if len(data) != info.file_size:
            raise FileRefused("the entry's size differs from what the archive declares")
        return data

    def close(self) -> None:
        self.archive.close()


class FolderSource(DatasetSource):
    """The regular files under a folder of this machine inside ``INSPECT_ALLOWED_PATHS`` (links not followed)."""

    def __init__(self, path: str, limits: ImportLimits, confinement: Confinement) -> None:
        super().__init__()
        try:
            self.root = confinement.path(path)
            is_dir = self.root.is_dir()
        except NotAllowed as error:
            raise ImportRefused(str(error)) from error
        except (OSError, ValueError) as error:  # a NUL byte, a name too long for the file system, ...
            raise ImportRefused(f"not a usable path: {error}") from error
        if not is_dir:
            raise ImportRefused(f"no folder at {path!r} on this machine")
        self.max_file_bytes = limits.max_file_bytes
        total = 0
        for folder, subfolders, files in os.walk(self.root, followlinks=False):
            here = Path(folder)
            for sub in subfolders:
                if (here / sub).is_symlink():
                    self.refused.append(Refusal(self._relative(here / sub), "a symbolic link"))
            for filename in files:
                total += self._add(here / filename)
                if len(self.names) + len(self.refused) > limits.max_files:
                    raise ImportRefused(f"the folder holds more than INSPECT_MAX_IMPORT_FILES ({limits.max_files}) "
                                        "files")
                if total > limits.max_total_bytes:
                    raise ImportRefused(f"the folder holds more than INSPECT_MAX_IMPORT_BYTES "
                                        f"({limits.max_total_bytes}) bytes")
        self.names.sort()

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _add(self, path: Path) -> int:
        """Lists the file (or its refusal); returns the bytes it counts for."""
        name = self._relative(path)
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            self.refused.append(Refusal(name, "a symbolic link"))
        elif not stat.S_ISREG(info.st_mode):
            self.refused.append(Refusal(name, "not a regular file"))
        elif info.st_size > self.max_file_bytes:
            self.refused.append(Refusal(name, f"larger than one upload may be ({info.st_size} > "
                                              f"{self.max_file_bytes} bytes)"))
        else:
            self.names.append(name)
            return info.st_size
        return 0

    def read(self, name: str) -> bytes:
        path = self.root / PurePosixPath(name)
        # The folder may have changed since it was listed: the file must still resolve inside the root.
        if not path.resolve().is_relative_to(self.root):
            raise FileRefused("the path now leads outside the folder (a symbolic link)")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as error:
            raise FileRefused(f"cannot be read: {error.strerror or error}") from error
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(self.max_file_bytes + 1)
        if len(data) > self.max_file_bytes:
            raise FileRefused(f"larger than one upload may be (> {self.max_file_bytes} bytes)")
        return data
