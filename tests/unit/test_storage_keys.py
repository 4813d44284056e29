"""Storage keys are built by the platform only; anything resembling a path trick is refused."""

import hashlib

import pytest

from infra.blob_gc import thumbnail_key
from infra.storage import StorageKeyError, blob_key
from infra.storage.base import validate_key

DIGEST = hashlib.sha256(b"image").hexdigest()


@pytest.mark.parametrize("key", ["a", "blobs/ab/abcdef", "projects/1f0e/model.xml", "x_y-z.1/A9"])
def test_valid_keys_pass_unchanged(key):
    assert validate_key(key) == key


@pytest.mark.parametrize("key", [
    "", "../x", "a/../b", "/abs", "a//b", "a/./b", ".", "..", "a/", ".hidden", "a b", "a\\b", "é", "a/\x00",
])
def test_invalid_keys_are_refused(key):
    with pytest.raises(StorageKeyError):
        validate_key(key)


def test_blob_and_thumbnail_keys_are_sharded_by_hash_and_valid():
    assert blob_key(DIGEST) == f"blobs/{DIGEST[:2]}/{DIGEST}"
    assert thumbnail_key(DIGEST) == f"thumbnails/{DIGEST[:2]}/{DIGEST}.png"
    assert validate_key(blob_key(DIGEST)) and validate_key(thumbnail_key(DIGEST))
    assert blob_key(DIGEST) != thumbnail_key(DIGEST)
