"""Defect masks and defect types on media, on the real app: PUT/GET/DELETE, the rules, snapshots, blob lifetime."""

from __future__ import annotations

import io
import uuid

import numpy as np
from PIL import Image

from infra.storage import blob_key
from tests.conftest import png_bytes
from tests.integration.media_support import frozen_items, stored_files, upload


def mask_png(size: tuple[int, int] = (64, 48), box: tuple[int, int, int, int] = (10, 10, 20, 20), value: int = 1
             ) -> bytes:
    mask = Image.new("L", size, 0)
    mask.paste(value, box)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def put_mask(client, media_id: str, data: bytes):
    return client.put(f"/api/media/{media_id}/mask", files={"file": ("mask.png", data, "image/png")})


def one(client, project_id: str, label: str, color: tuple[int, int, int]) -> dict:
    response = upload(client, project_id, [(f"{label}.png", png_bytes(color=color))], label=label)
    assert response.status_code == 201, response.text
    return response.json()["items"][0]


def test_an_anomalous_item_takes_a_mask_that_can_be_read_and_removed(client, project):
    defective = one(client, project["id"], "anomalous", (200, 10, 10))
    assert (defective["has_mask"], defective["defect_type"]) == (False, None)
    assert client.get(f"/api/media/{defective['id']}/mask").status_code == 404

    response = put_mask(client, defective["id"], mask_png(value=1))  # any non-zero value is defect
    assert response.status_code == 200, response.text
    assert response.json()["has_mask"] is True
    assert client.get(f"/api/media/{defective['id']}").status_code == 200
    served = client.get(f"/api/media/{defective['id']}/mask")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(served.content)))
    assert pixels.shape == (48, 64) and (pixels[15, 15], pixels[30, 40]) == (255, 0)
    assert set(np.unique(pixels)) == {0, 255}

    first_blob = served.headers["etag"].strip('"')
    assert put_mask(client, defective["id"], mask_png(box=(30, 30, 40, 40))).status_code == 200  # replaced
    assert blob_key(first_blob) not in stored_files(client)  # the replaced mask's blob went

    assert client.delete(f"/api/media/{defective['id']}/mask").status_code == 204
    listed = client.get(f"/api/projects/{project['id']}/media").json()["items"][0]
    assert listed["has_mask"] is False
    assert client.get(f"/api/media/{defective['id']}/mask").status_code == 404
    assert client.delete(f"/api/media/{defective['id']}/mask").status_code == 404
    assert len(stored_files(client)) == 2  # the image and its thumbnail: no mask blob left


def test_masks_that_do_not_fit_are_422_and_change_nothing(client, project):
    defective = one(client, project["id"], "anomalous", (200, 10, 10))
    good = one(client, project["id"], "normal", (90, 90, 90))
    before = stored_files(client)
    for media_id, data, message in [
        (good["id"], mask_png(), "only anomalous"),
        (defective["id"], mask_png(size=(65, 48)), "same size"),
        (defective["id"], mask_png(value=0), "no defect pixel"),
        (defective["id"], b"not a png", "expected PNG"),
    ]:
        response = put_mask(client, media_id, data)
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
    assert client.put(f"/api/media/{defective['id']}/mask").status_code == 422  # no file at all
    assert client.put(f"/api/media/{uuid.uuid4()}/mask", files={"file": ("m.png", mask_png())}).status_code == 404
    assert stored_files(client) == before


def test_defect_types_are_set_filtered_and_belong_to_anomalous_items(client, project):
    crack = one(client, project["id"], "anomalous", (200, 10, 10))
    scratch = one(client, project["id"], "anomalous", (10, 200, 10))
    good = one(client, project["id"], "normal", (90, 90, 90))
    response = client.patch(f"/api/media/{crack['id']}", json={"defect_type": "crack"})
    assert response.status_code == 200 and response.json()["defect_type"] == "crack"
    assert client.patch(f"/api/media/{scratch['id']}", json={"defect_type": "scratch"}).status_code == 200
    page = client.get(f"/api/projects/{project['id']}/media", params={"defect_type": "crack"}).json()
    assert page["total"] == 1 and [item["id"] for item in page["items"]] == [crack["id"]]

    for media_id, body in [(good["id"], {"defect_type": "crack"}), (crack["id"], {"defect_type": "good"}),
                           (crack["id"], {"defect_type": "anomalous"}), (crack["id"], {"defect_type": "a/b"}),
                           (crack["id"], {"defect_type": "x" * 65})]:
        assert client.patch(f"/api/media/{media_id}", json=body).status_code == 422, body

    # A masked item keeps its label until its mask is gone; relabelled normal, it loses its defect type.
    assert put_mask(client, crack["id"], mask_png()).status_code == 200
    refused = client.patch(f"/api/media/{crack['id']}", json={"label": "normal"})
    assert refused.status_code == 422 and "mask" in refused.json()["detail"]
    assert client.delete(f"/api/media/{crack['id']}/mask").status_code == 204
    relabelled = client.patch(f"/api/media/{crack['id']}", json={"label": "normal"}).json()
    assert (relabelled["label"], relabelled["defect_type"]) == ("normal", None)
    cleared = client.patch(f"/api/media/{scratch['id']}", json={"defect_type": None}).json()
    assert cleared["defect_type"] is None and cleared["label"] == "anomalous"


def test_a_snapshot_freezes_the_mask_and_keeps_its_blob(client, project):
    defective = one(client, project["id"], "anomalous", (200, 10, 10))
    assert client.patch(f"/api/media/{defective['id']}", json={"defect_type": "crack"}).status_code == 200
    assert put_mask(client, defective["id"], mask_png()).status_code == 200
    mask_hash = client.get(f"/api/media/{defective['id']}/mask").headers["etag"].strip('"')
    [frozen] = frozen_items(client, project["id"])
    assert (frozen.mask_sha256, frozen.defect_type) == (mask_hash, "crack")

    assert client.delete(f"/api/media/{defective['id']}/mask").status_code == 204
    assert client.delete(f"/api/media/{defective['id']}").status_code == 204
    assert blob_key(mask_hash) in stored_files(client)  # the snapshot still names it
    assert client.delete(f"/api/projects/{project['id']}").status_code == 204
    assert stored_files(client) == []


def test_deleting_a_masked_item_deletes_its_mask_blob(client, project):
    defective = one(client, project["id"], "anomalous", (200, 10, 10))
    assert put_mask(client, defective["id"], mask_png()).status_code == 200
    assert len(stored_files(client)) == 3
    assert client.delete(f"/api/media/{defective['id']}").status_code == 204
    assert stored_files(client) == []
