"""Media split/origin on the real app: assigned on upload, filtered in the listing, changed by PATCH."""

from __future__ import annotations

import hashlib

from infra.splits import SplitAssigner
from tests.conftest import png_bytes
from tests.integration.media_support import frozen_items, upload


def images(count: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(f"img-{i}.png", png_bytes(color=(i % 256, (i // 256) % 256, 77))) for i in range(start, start + count)]


def listing(client, project_id: str, **filters) -> dict:
    response = client.get(f"/api/projects/{project_id}/media", params={"limit": 1000, **filters})
    assert response.status_code == 200, response.text
    return response.json()


def test_uploads_get_the_split_of_the_rule_and_the_listing_filters(client, project):
    normal, anomalous = images(12), images(3, start=100)
    assert upload(client, project["id"], normal[:5]).status_code == 201  # two uploads: the counts carry over
    assert upload(client, project["id"], normal[5:]).status_code == 201
    assert upload(client, project["id"], anomalous, label="anomalous").status_code == 201

    expected = SplitAssigner()
    want = {name: expected.assign("normal", hashlib.sha256(data).hexdigest()) for name, data in normal}
    everything = listing(client, project["id"])["items"]
    assert {item["filename"]: item["split"] for item in everything if item["label"] == "normal"} == want
    assert {(item["origin"], item["pipeline_id"], item["score"]) for item in everything} == {("uploaded", None, None)}

    evaluation = listing(client, project["id"], split="eval")
    assert evaluation["total"] >= 4 + 3  # the eval floor from the 8th normal on, plus every anomalous image
    eval_anomalous = {item["filename"] for item in evaluation["items"] if item["label"] == "anomalous"}
    assert eval_anomalous == {name for name, _ in anomalous}
    assert listing(client, project["id"], split="train")["total"] == 15 - evaluation["total"]
    both = listing(client, project["id"], split="eval", label="normal")
    assert both["total"] == sum(split == "eval" for split in want.values())
    assert listing(client, project["id"], origin="collected")["total"] == 0
    assert listing(client, project["id"], origin="uploaded")["total"] == 15
    for bad in ({"split": "test"}, {"origin": "camera"}, {"label": "defective"}):
        assert client.get(f"/api/projects/{project['id']}/media", params=bad).status_code == 422


def test_unlabelled_cannot_be_uploaded(client, project):
    response = upload(client, project["id"], images(1), label="unlabelled")
    assert response.status_code == 422 and "detail" in response.json()
    assert listing(client, project["id"])["total"] == 0


def test_patch_changes_split_and_label(client, project):
    item = upload(client, project["id"], images(1)).json()["items"][0]
    assert item["split"] == "train"  # a project's first normals always train
    url = f"/api/media/{item['id']}"

    moved = client.patch(url, json={"split": "eval"})
    assert moved.status_code == 200 and (moved.json()["split"], moved.json()["label"]) == ("eval", "normal")
    assert listing(client, project["id"], split="eval")["total"] == 1
    back = client.patch(url, json={"split": "train", "label": "normal"}).json()
    assert (back["split"], back["label"]) == ("train", "normal")

    relabelled = client.patch(url, json={"label": "anomalous"}).json()
    assert (relabelled["split"], relabelled["label"]) == ("eval", "anomalous")  # anomalous is evaluation-only
    refused = client.patch(url, json={"split": "train"})
    assert refused.status_code == 422 and "evaluation" in refused.json()["detail"]
    again_normal = client.patch(url, json={"label": "normal"}).json()
    assert (again_normal["split"], again_normal["label"]) == ("eval", "normal")  # the split stays put
    assert client.patch(url, json={"label": "unlabelled"}).json()["label"] == "unlabelled"

    for bad in ({"split": "test"}, {"label": "defective"}, {}, {"split": "eval", "colour": "red"}):
        response = client.patch(url, json=bad)
        assert response.status_code == 422, bad
    assert client.get(f"/api/projects/{project['id']}/media").json()["items"][0]["label"] == "unlabelled"
    assert client.patch("/api/media/00000000-0000-0000-0000-000000000000", json={"split": "eval"}).status_code == 404


def test_a_duplicate_upload_keeps_the_split_of_its_twin(client, project):
    first = upload(client, project["id"], images(10)).json()["items"]
    twin = next(item for item in first if item["split"] == "eval")
    data = client.get(f"/api/media/{twin['id']}").content
    again = upload(client, project["id"], [("copy.png", data)]).json()["items"][0]
    assert again["split"] == "eval"


def test_a_snapshot_freezes_the_split(client, project):
    items = upload(client, project["id"], images(10)).json()["items"]
    moved = next(item for item in items if item["split"] == "train")
    frozen = frozen_items(client, project["id"])
    assert client.patch(f"/api/media/{moved['id']}", json={"split": "eval"}).status_code == 200  # after the freeze
    assert {str(row.media_id): row.split for row in frozen} == {item["id"]: item["split"] for item in items}
