"""The worker-local model cache: one download per model, never a half-written folder."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from infra.model_cache import ModelCache, ModelFilesMissing
from infra.model_files import openvino_prefix
from infra.storage.local import LocalStore


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "objects")


def test_downloads_once_then_serves_the_cached_copy(store: LocalStore, tmp_path: Path) -> None:
    model_id = uuid.uuid4()
    store.put(openvino_prefix(model_id) + "model.xml", b"<xml/>")
    store.put(openvino_prefix(model_id) + "model.bin", b"\x00\x01")
    cache = ModelCache(store, tmp_path / "cache")

    folder = cache.get(model_id)
    assert folder == cache.path(model_id)
    assert (folder / "model.xml").read_bytes() == b"<xml/>" and (folder / "model.bin").read_bytes() == b"\x00\x01"

    store.delete(openvino_prefix(model_id) + "model.xml")  # a second get must not touch storage
    assert cache.get(str(model_id)) == folder and (folder / "model.xml").exists()
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [str(model_id)]  # no staging folder left


def test_a_model_without_files_fails_and_leaves_nothing(store: LocalStore, tmp_path: Path) -> None:
    cache = ModelCache(store, tmp_path / "cache")
    model_id = uuid.uuid4()
    with pytest.raises(ModelFilesMissing, match=str(model_id)):
        cache.get(model_id)
    assert not cache.path(model_id).exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_keeps_the_most_recently_used_models(store: LocalStore, tmp_path: Path) -> None:
    cache = ModelCache(store, tmp_path / "cache", keep=2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for model_id in (first, second, third):
        store.put(openvino_prefix(model_id) + "model.xml", b"<xml/>")
    cache.get(first)
    cache.get(second)
    os.utime(cache.path(first), (1, 1))  # the first model was used long ago ...
    os.utime(cache.path(second), (2, 2))
    cache.get(first)  # ... until now
    cache.get(third)
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == sorted([str(first), str(third)])
    assert (cache.get(second) / "model.xml").exists()  # dropped from the cache, not from storage
