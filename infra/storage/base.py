"""The storage interface every backend implements."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

# Keys are built by the platform (hashes, UUIDs, fixed names); anything else is refused so that
# no client-supplied text can become a path.
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StorageKeyError(ValueError):
    """A key that is not a clean relative path of safe parts."""


def validate_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(not _KEY_PART.match(part) or part in {".", ".."} for part in parts):
        raise StorageKeyError(f"invalid storage key: {key!r}")
    return key


class ObjectStore(ABC):
    """Flat key → bytes store; keys use '/' separators."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Raise FileNotFoundError when the key is absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the key; absent keys are not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]: ...

    def put_file(self, key: str, path: Path) -> None:
        self.put(key, Path(path).read_bytes())

    def put_fileobj(self, key: str, fileobj: BinaryIO) -> None:
        """Store what a readable binary file holds from its current position (backends stream it)."""
        self.put(key, fileobj.read())

    def get_file(self, key: str, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.get(key))
        return path

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every key (absent ones are not an error); backends override this with a bulk form."""
        for key in keys:
            self.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        self.delete_many(keys)
        return len(keys)
