"""Media API on the real app: uploads are decoded, stored content-addressed, served, and cleaned up."""

from __future__ import annotations

import hashlib
import io
import re
import uuid

import pytest
from PIL import Image
from sqlalchemy import func, select

from infra.blob_gc import thumbnail_key
from infra.database.models import Media, Snapshot, SnapshotItem
from infra.storage import blob_key
from tests.conftest import png_bytes
from tests.integration.media_support import files_on_disk, part_files, stored_files, upload

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys_for(*images: bytes) -> list[str]:
    return sorted(key for data in images for key in (blob_key(sha(data)), thumbnail_key(sha(data))))


def media_rows(client) -> int:
    with client.app.state.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(Media))


def test_upload_real_images_then_list_get_and_thumbnail(client, project, part_images, settings):
    normal = part_files(part_images, "Free", 3)
    crack = part_files(part_images, "Crack", 1)
    first = upload(client, project["id"], normal, label="normal")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["uploaded"], body["failed"], body["errors"]) == (3, 0, [])
    assert upload(client, project["id"], crack, label="anomalous").status_code == 201

    for item, (name, data) in zip(body["items"], normal, strict=True):
        with Image.open(io.BytesIO(data)) as original:
            assert original.mode == "L"  # the test parts are grayscale JPEGs
            size = original.size
        assert (item["filename"], item["label"], item["content_type"]) == (name, "normal", "image/jpeg")
        assert (item["width"], item["height"], item["size_bytes"]) == (*size, len(data))
        assert item["thumbnail_url"] == f"/api/media/{item['id']}/thumbnail"
        assert ISO_Z.match(item["created_at"])

        served = client.get(f"/api/media/{item['id']}")
        assert served.status_code == 200 and served.content == data
        assert served.headers["content-type"] == "image/jpeg"
        thumb = client.get(item["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(thumb.content)) as image:
            assert image.format == "PNG" and image.mode == "L"
            assert max(image.size) == min(settings.thumbnail_size, max(size))

    listing = client.get(f"/api/projects/{project['id']}/media").json()
    assert (listing["total"], listing["limit"], listing["offset"]) == (4, 20, 0)
    assert listing["items"][0]["filename"] == crack[0][0]  # newest first
    assert [item["label"] for item in listing["items"]].count("anomalous") == 1
    by_label = {label: client.get(f"/api/projects/{project['id']}/media", params={"label": label}).json()
                for label in ("normal", "anomalous")}
    assert {item["filename"] for item in by_label["normal"]["items"]} == {name for name, _ in normal}
    assert (by_label["normal"]["total"], by_label["anomalous"]["total"]) == (3, 1)
    assert stored_files(client) == keys_for(*(data for _, data in normal + crack))


def test_paging_is_stable_and_parameters_are_validated(client, project):
    images = [(f"p{i}.png", png_bytes(color=(i, 10, 20))) for i in range(5)]
    assert upload(client, project["id"], images).status_code == 201
    url = f"/api/projects/{project['id']}/media"
    everything = [item["id"] for item in client.get(url).json()["items"]]
    pages = [client.get(url, params={"limit": 2, "offset": offset}).json() for offset in (0, 2, 4, 6)]
    assert [page["total"] for page in pages] == [5, 5, 5, 5]
    assert [item["id"] for page in pages for item in page["items"]] == everything
    assert len(set(everything)) == 5 and pages[-1]["items"] == []

    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"label": "broken"}, {"limit": "x"}):
        response = client.get(url, params=params)
        assert response.status_code == 422 and "detail" in response.json(), params
    assert client.get(url, params={"limit": 1000}).status_code == 200
    missing = client.get(f"/api/projects/{uuid.uuid4()}/media")
    assert missing.status_code == 404 and "detail" in missing.json()


def test_bad_files_are_refused_and_good_ones_kept(client, project, part_images):
    (name, jpeg), = part_files(part_images, "Free", 1)
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    files = [("notes.png", b"not an image at all"), (name, jpeg), ("cut.jpg", jpeg[: len(jpeg) // 2]),
             ("anim.gif", gif.getvalue()), ("empty.png", b"")]
    response = upload(client, project["id"], files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["uploaded"], body["failed"]) == (1, 4)
    assert [item["filename"] for item in body["items"]] == [name]
    errors = {error["filename"]: error["detail"] for error in body["errors"]}
    assert set(errors) == {"notes.png", "cut.jpg", "anim.gif", "empty.png"}
    assert "not a supported image" in errors["notes.png"] and "not a supported image" in errors["anim.gif"]
    assert "could not be decoded" in errors["cut.jpg"] and errors["empty.png"] == "empty file"
    assert stored_files(client) == keys_for(jpeg)
    assert media_rows(client) == 1


def test_all_bad_upload_is_422_and_stores_nothing(client, project):
    response = upload(client, project["id"], [("a.png", b"text"), ("b.jpg", b"\xff\xd8\xff garbage")])
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "no file was stored" in detail["message"]
    assert [error["filename"] for error in detail["errors"]] == ["a.png", "b.jpg"]
    assert stored_files(client) == [] and media_rows(client) == 0


def test_malformed_requests_store_nothing(client, project):
    url = f"/api/projects/{project['id']}/media"
    image = ("files", ("a.png", png_bytes(), "image/png"))
    for kwargs in ({"files": [image]},                                     # no label
                   {"files": [image], "data": {"label": "defective"}},      # unknown label
                   {"data": {"label": "normal"}},                           # no files
                   {"files": {"label": (None, "normal")}}):                 # multipart without files
        response = client.post(url, **kwargs)
        assert response.status_code == 422 and "detail" in response.json(), kwargs
    unknown = upload(client, str(uuid.uuid4()), [("a.png", png_bytes())])
    assert unknown.status_code == 404 and "detail" in unknown.json()
    assert stored_files(client) == [] and media_rows(client) == 0


def raw_multipart(files: list[tuple[bytes, bytes]], label: bytes) -> bytes:
    """A multipart body written by hand: clients such as httpx escape control characters themselves."""
    parts = [b'--B\r\nContent-Disposition: form-data; name="files"; filename="' + name + b'"\r\n\r\n' + data + b"\r\n"
             for name, data in files]
    return b"".join(parts) + b'--B\r\nContent-Disposition: form-data; name="label"\r\n\r\n' + label + b"\r\n--B--\r\n"


def test_client_filenames_are_display_text_only(client, project, settings):
    image = png_bytes(color=(1, 2, 3))
    names = [b"../../../outside.png", b"C:\\temp\\win.png", b"ctrl\x07char\x1b.png", b"x" * 300 + b".png",
             "evil\u202egnp.png".encode()]
    body = raw_multipart([(name, image) for name in names], b"normal")
    response = client.post(f"/api/projects/{project['id']}/media", content=body,
                           headers={"content-type": "multipart/form-data; boundary=B"})
    assert response.status_code == 201, response.text
    assert [item["filename"] for item in response.json()["items"]] == [
        "outside.png", "win.png", "ctrlchar.png", ("x" * 300 + ".png")[:255], "evilgnp.png"]
    # Content-addressed: one blob for four rows, and nothing named after the client's text.
    storage_root = settings.resolved_data_dir / "storage"
    assert files_on_disk(storage_root) == keys_for(image)
    assert not list(settings.resolved_data_dir.parent.glob("outside.png"))


def test_request_over_the_limit_is_413_and_stores_nothing(client, project, settings):
    url = f"/api/projects/{project['id']}/media"
    big = b"\x00" * (settings.max_upload_bytes + 1)
    declared = client.post(url, files=[("files", ("big.png", big, "image/png"))], data={"label": "normal"})
    assert declared.status_code == 413 and "upload limit" in declared.json()["detail"]

    def chunks():  # chunked transfer: no Content-Length, the bytes read are counted instead
        yield b'--B\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n\r\n'
        for _ in range(settings.max_upload_bytes // (1 << 20) + 1):
            yield b"\x00" * (1 << 20)
        yield b"\r\n--B--\r\n"

    chunked = client.post(url, content=chunks(), headers={"content-type": "multipart/form-data; boundary=B"})
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and "upload limit" in chunked.json()["detail"]
    # Refused on the header alone, before a byte of the body is read.
    header_only = client.post(url, content=b"x", headers={"content-length": str(settings.max_upload_bytes + 1),
                                                         "content-type": "multipart/form-data; boundary=B"})
    assert header_only.status_code == 413
    bogus = client.post(url, content=b"x", headers={"content-length": "-1", "content-type": "multipart/form-data"})
    assert bogus.status_code == 400
    assert stored_files(client) == [] and media_rows(client) == 0
    assert upload(client, project["id"], [("ok.png", png_bytes())]).status_code == 201


@pytest.mark.parametrize(("fmt", "mode", "content_type"), [
    ("PNG", "RGBA", "image/png"), ("BMP", "RGB", "image/bmp"), ("TIFF", "I;16", "image/tiff"),
    ("WEBP", "RGB", "image/webp"),
])
def test_served_content_type_comes_from_the_decoded_format(client, project, fmt, mode, content_type):
    buffer = io.BytesIO()
    Image.new(mode, (40, 30), 7).save(buffer, format=fmt)
    response = upload(client, project["id"], [("misnamed.jpg", buffer.getvalue())])
    assert response.status_code == 201, response.text
    item = response.json()["items"][0]
    assert item["content_type"] == content_type
    served = client.get(f"/api/media/{item['id']}")
    assert served.headers["content-type"] == content_type and served.content == buffer.getvalue()
    assert Image.open(io.BytesIO(client.get(item["thumbnail_url"]).content)).size == (40, 30)


def test_shared_blobs_are_deleted_only_when_unreferenced(client, project):
    image, other = png_bytes(color=(9, 9, 9)), png_bytes(color=(8, 8, 8))
    second_project = client.post("/api/projects", json={"name": "Line 2"}).json()
    twins = upload(client, project["id"], [("a.png", image), ("b.png", image), ("c.png", other)]).json()["items"]
    elsewhere = upload(client, second_project["id"], [("a.png", image)]).json()["items"][0]
    assert stored_files(client) == keys_for(image, other)

    with client.app.state.sessionmaker() as session:  # a snapshot froze `other`
        snapshot = Snapshot(project_id=uuid.UUID(project["id"]), name="v1", status="completed", media_count=1)
        snapshot.items.append(SnapshotItem(media_id=uuid.UUID(twins[2]["id"]), filename="c.png", label="normal",
                                           sha256=sha(other)))
        session.add(snapshot)
        session.commit()

    for item in twins:
        assert client.delete(f"/api/media/{item['id']}").status_code == 204
        assert client.get(f"/api/media/{item['id']}").status_code == 404
    # `image` is still used by the other project, `other` by the snapshot.
    assert stored_files(client) == keys_for(image, other)
    assert client.get(f"/api/media/{elsewhere['id']}").content == image
    assert client.delete(f"/api/media/{elsewhere['id']}").status_code == 204
    assert stored_files(client) == keys_for(other)
    assert client.delete(f"/api/media/{elsewhere['id']}").status_code == 404


def test_project_deletion_removes_its_blobs_but_not_shared_ones(client, project, settings, part_images):
    (_, own), (_, shared) = part_files(part_images, "Blowhole", 2)
    second = client.post("/api/projects", json={"name": "Line 2"}).json()
    assert upload(client, project["id"], [("own.jpg", own), ("shared.jpg", shared)]).status_code == 201
    kept = upload(client, second["id"], [("shared.jpg", shared)], label="anomalous").json()["items"][0]
    storage_root = settings.resolved_data_dir / "storage"
    assert files_on_disk(storage_root) == keys_for(own, shared)

    assert client.delete(f"/api/projects/{project['id']}").status_code == 204
    assert files_on_disk(storage_root) == keys_for(shared)
    assert client.get(f"/api/media/{kept['id']}").content == shared
    assert client.get(kept["thumbnail_url"]).status_code == 200

    assert client.delete(f"/api/projects/{second['id']}").status_code == 204
    assert files_on_disk(storage_root) == []
    assert media_rows(client) == 0


def test_missing_thumbnail_is_rebuilt_from_the_original(client, project):
    image = png_bytes((500, 100), (50, 60, 70))
    item = upload(client, project["id"], [("wide.png", image)]).json()["items"][0]
    store = client.app.state.store
    store.delete(thumbnail_key(sha(image)))
    thumb = client.get(item["thumbnail_url"])
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (256, 51)
    assert store.exists(thumbnail_key(sha(image)))


def test_unknown_media_is_404(client):
    missing = uuid.uuid4()
    for response in (client.get(f"/api/media/{missing}"), client.get(f"/api/media/{missing}/thumbnail"),
                     client.delete(f"/api/media/{missing}")):
        assert response.status_code == 404 and "detail" in response.json()
    assert client.get("/api/media/not-a-uuid").status_code == 422
