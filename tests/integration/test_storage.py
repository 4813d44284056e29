"""Both storage backends pass the same tests; S3 runs against a real moto server."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.blob_gc import thumbnail_key
from infra.storage import ObjectStore, StorageKeyError, blob_key
from infra.storage.base import STREAM_CHUNK_BYTES
from infra.storage.local import LocalStore
from infra.storage.s3 import S3Store
from tests.conftest import png_bytes
from tests.integration.media_support import upload
from tests.integration.s3_server import moto_server, use_dummy_aws_credentials

INVALID_KEYS = ["../x", "/abs", "a//b", "a/./b", "", "a/../../b", "x/.."]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    use_dummy_aws_credentials(monkeypatch)
    # A fresh bucket per test, and a prefix, so that keys outside it must stay invisible.
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Store(f"test-{uuid.uuid4().hex[:12]}", prefix="tenant/a", endpoint_url=endpoint)


def test_put_get_exists_overwrite_delete(store):
    assert not store.exists("a/b/c.bin")
    store.put("a/b/c.bin", b"first")
    assert store.exists("a/b/c.bin") and store.get("a/b/c.bin") == b"first"
    store.put("a/b/c.bin", b"second")
    assert store.get("a/b/c.bin") == b"second"
    store.delete("a/b/c.bin")
    assert not store.exists("a/b/c.bin")
    store.delete("a/b/c.bin")  # absent keys are not an error
    assert list(store.list()) == []


def test_list_and_delete_prefix(store):
    keys = ["projects/1/model.xml", "projects/1/sub/model.bin", "projects/10/model.xml", "blobs/ab/abc"]
    for key in keys:
        store.put(key, key.encode())
    assert sorted(store.list()) == sorted(keys)
    assert sorted(store.list("projects/1/")) == ["projects/1/model.xml", "projects/1/sub/model.bin"]
    assert store.delete_prefix("projects/1/") == 2
    assert sorted(store.list()) == ["blobs/ab/abc", "projects/10/model.xml"]
    assert store.get("projects/10/model.xml") == b"projects/10/model.xml"
    assert store.delete_prefix("nothing/") == 0


def test_put_file_and_get_file(store, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(range(256)) * 100)
    store.put_file("files/model.bin", source)
    target = store.get_file("files/model.bin", tmp_path / "out" / "deep" / "model.bin")
    assert target.read_bytes() == source.read_bytes()
    assert list(store.list("files/")) == ["files/model.bin"]


def test_put_fileobj_streams_from_the_current_position(store):
    """How an uploaded dataset archive reaches storage: from the API's spooled upload, not a path."""
    upload = io.BytesIO(b"ignored" + bytes(range(256)) * 5000)
    upload.seek(len(b"ignored"))
    store.put_fileobj("projects/p/imports/a.zip", upload)
    assert store.get("projects/p/imports/a.zip") == bytes(range(256)) * 5000
    assert list(store.list("projects/")) == ["projects/p/imports/a.zip"]  # no temporary file left beside it


def test_missing_keys_raise_file_not_found(store, tmp_path):
    store.put("dir/inner", b"x")
    for key in ("missing", "dir/missing", "dir"):  # "dir" only holds other keys: absent, like on S3
        with pytest.raises(FileNotFoundError):
            store.get(key)
        with pytest.raises(FileNotFoundError):
            store.get_file(key, tmp_path / "out.bin")
        assert not store.exists(key)
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_refused_by_every_operation(store, key, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    operations = [lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key),
                  lambda: store.delete(key), lambda: store.put_file(key, tmp_path / "f"),
                  lambda: store.get_file(key, tmp_path / "g"), lambda: store.put_fileobj(key, io.BytesIO(b"x"))]
    for operation in operations:
        with pytest.raises(StorageKeyError):
            operation()
    assert list(store.list()) == []


def test_blob_keys_are_content_addressed(store):
    digest = hashlib.sha256(b"same bytes").hexdigest()
    assert blob_key(digest) == f"blobs/{digest[:2]}/{digest}"
    store.put(blob_key(digest), b"same bytes")
    assert list(store.list("blobs/")) == [blob_key(digest)]


def test_open_stream_reads_an_object_in_chunks_and_refuses_a_missing_one_up_front(store):
    data = bytes(range(256)) * 12_288  # 3 MiB: several chunks
    store.put("models/m/exports/big.zip", data)
    stream = store.open_stream("models/m/exports/big.zip")
    chunks = list(stream.chunks)
    assert stream.size == len(data) and b"".join(chunks) == data
    assert len(chunks) >= 3 and max(len(chunk) for chunk in chunks) <= STREAM_CHUNK_BYTES
    with pytest.raises(FileNotFoundError):
        store.open_stream("models/m/exports/missing.zip")


def test_s3_prefix_isolates_tenants(s3_endpoint, monkeypatch):
    use_dummy_aws_credentials(monkeypatch)
    bucket = f"shared-{uuid.uuid4().hex[:12]}"
    tenant_a = S3Store(bucket, prefix="a", endpoint_url=s3_endpoint)
    tenant_b = S3Store(bucket, prefix="/b/", endpoint_url=s3_endpoint)
    tenant_a.put("k", b"a")
    tenant_b.put("k", b"b")
    assert (tenant_a.get("k"), tenant_b.get("k")) == (b"a", b"b")
    assert list(tenant_a.list()) == ["k"]
    raw_keys = [item["Key"] for item in tenant_a.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(raw_keys) == ["a/k", "b/k"]


def test_media_api_on_s3(s3_endpoint, monkeypatch, tmp_path, make_settings):
    use_dummy_aws_credentials(monkeypatch)
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    settings = make_settings(storage_backend="s3", s3_endpoint_url=s3_endpoint,
                        s3_bucket=bucket, s3_prefix="inspect")
    image = png_bytes((80, 60), (10, 200, 30))
    digest = hashlib.sha256(image).hexdigest()
    raw = boto3.client("s3", endpoint_url=s3_endpoint)

    def bucket_keys() -> list[str]:
        return sorted(item["Key"] for item in raw.list_objects_v2(Bucket=bucket).get("Contents", []))

    with TestClient(create_app(settings)) as client:
        project = client.post("/api/projects", json={"name": "On S3"}).json()
        uploaded = upload(client, project["id"], [("part.png", image)])
        assert uploaded.status_code == 201, uploaded.text
        media = uploaded.json()["items"][0]
        assert bucket_keys() == sorted([f"inspect/{blob_key(digest)}", f"inspect/{thumbnail_key(digest)}"])
        assert not (tmp_path / "data" / "storage").exists()  # nothing went to the local folder

        original = client.get(f"/api/media/{media['id']}")
        assert original.status_code == 200 and original.content == image
        assert original.headers["content-type"] == "image/png"
        assert client.get(media["thumbnail_url"]).headers["content-type"] == "image/png"
        assert client.get(f"/api/projects/{project['id']}/media").json()["total"] == 1

        assert client.delete(f"/api/media/{media['id']}").status_code == 204
        assert client.get(f"/api/media/{media['id']}").status_code == 404
        assert bucket_keys() == []
