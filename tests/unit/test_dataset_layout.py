"""Dataset layouts: which file of an import becomes what, and an MVTec export that plans back into the same items."""

from __future__ import annotations

import pytest

from infra.datasets.export import ExportItem, mvtec_members
from infra.datasets.layout import FLAT, MVTEC, ImageEntry, LayoutError, detect_layout, plan_import

MVTEC_NAMES = [
    "bottle/license.txt",
    "bottle/train/good/000.png",
    "bottle/train/good/001.png",
    "bottle/test/good/000.png",
    "bottle/test/broken_large/000.png",
    "bottle/test/broken_large/001.png",
    "bottle/test/contamination/000.png",
    "bottle/ground_truth/broken_large/000_mask.png",
    "bottle/ground_truth/contamination/000_mask.png",
    "bottle/ground_truth/contamination/009_mask.png",  # no test/contamination/009.*
    "bottle/ground_truth/good/000_mask.png",
    "bottle/ground_truth/broken_large/001.png",  # not <name>_mask.png
    "bottle/test/broken_large/deeper/002.png",
    "bottle/test/bad name!/003.png",
    "__MACOSX/bottle/train/good/._000.png",
    "bottle/.DS_Store",
]


def by_path(entries: list[ImageEntry]) -> dict[str, ImageEntry]:
    return {entry.path: entry for entry in entries}


def test_mvtec_inside_a_top_folder() -> None:
    plan = plan_import(MVTEC_NAMES)
    assert plan.layout == MVTEC and plan.ignored == 2
    images = by_path(plan.images)
    assert images["bottle/train/good/000.png"] == ImageEntry("bottle/train/good/000.png", "normal", "train")
    assert images["bottle/test/good/000.png"] == ImageEntry("bottle/test/good/000.png", "normal", "eval")
    assert images["bottle/test/broken_large/000.png"] == ImageEntry(
        "bottle/test/broken_large/000.png", "anomalous", "eval", "broken_large",
        "bottle/ground_truth/broken_large/000_mask.png")
    assert images["bottle/test/broken_large/001.png"].mask_path is None
    assert images["bottle/test/contamination/000.png"].mask_path == "bottle/ground_truth/contamination/000_mask.png"
    refused = {refusal.file: refusal.reason for refusal in plan.refused}
    assert set(refused) == {
        "bottle/license.txt", "bottle/ground_truth/contamination/009_mask.png", "bottle/ground_truth/good/000_mask.png",
        "bottle/ground_truth/broken_large/001.png", "bottle/test/broken_large/deeper/002.png",
        "bottle/test/bad name!/003.png"}
    assert refused["bottle/ground_truth/contamination/009_mask.png"] == "a mask without an image"
    assert refused["bottle/ground_truth/good/000_mask.png"] == "a normal image has no defect mask"
    assert "outside the dataset layout" in refused["bottle/license.txt"]
    assert "defect type" in refused["bottle/test/bad name!/003.png"]


def test_flat_layout_pairs_masks_by_stem_and_leaves_splits_to_the_project() -> None:
    plan = plan_import(["normal/a.png", "normal/b.jpg", "anomalous/c.jpg", "anomalous/d.png", "masks/c.png",
                        "masks/b.png", "masks/x.png", "anomalous/sub/e.png"])
    assert plan.layout == FLAT
    images = by_path(plan.images)
    assert images["normal/a.png"] == ImageEntry("normal/a.png", "normal", None)
    assert images["anomalous/c.jpg"] == ImageEntry("anomalous/c.jpg", "anomalous", "eval", None, "masks/c.png")
    assert images["anomalous/d.png"].mask_path is None and images["normal/b.jpg"].mask_path is None
    refused = {refusal.file: refusal.reason for refusal in plan.refused}
    assert refused == {"masks/b.png": "a normal image has no defect mask", "masks/x.png": "a mask without an image",
                       "anomalous/sub/e.png": refused["anomalous/sub/e.png"]}


@pytest.mark.parametrize(("names", "message"), [
    ([], "holds no files"),
    (["images/a.png", "images/b.png"], "unknown dataset layout"),
    (["train/good/a.png", "normal/b.png"], "mixes"),
    (["a/train/good/x.png", "b/test/good/y.png"], "unknown dataset layout"),  # two top folders
])
def test_names_that_fit_no_layout_are_refused_as_a_whole(names: list[str], message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        detect_layout(names)


def test_an_mvtec_export_plans_back_into_the_same_items() -> None:
    items = [
        ExportItem("good.png", "normal", "train", "a" * 64),
        ExportItem("good.png", "normal", "train", "b" * 64),  # same name twice in one folder
        ExportItem("GOOD.jpg", "normal", "train", "c" * 64),  # same stem but for case: Windows would merge them
        ExportItem("held out.png", "normal", "eval", "d" * 64),
        ExportItem(".hidden.png", "anomalous", "eval", "e" * 64, "m" * 64, "crack"),  # a dot would hide it
        ExportItem("x.png", "anomalous", "eval", "f" * 64, None, None),
        ExportItem("frame.png", "unlabelled", "train", "0" * 64),
    ]
    members = mvtec_members(items)
    names = [member.name for member in members]
    assert len(set(names)) == len(names) and "0" * 64 not in {member.sha256 for member in members}
    assert names[:3] == ["train/good/good.png", "train/good/good-2.png", "train/good/GOOD-3.jpg"]
    plan = plan_import(names)
    assert plan.refused == [] and plan.layout == MVTEC
    blob = {member.name: member.sha256 for member in members}
    back = {(blob[entry.path], entry.label, entry.split, entry.defect_type, blob.get(entry.mask_path or ""))
            for entry in plan.images}
    assert back == {(item.sha256, item.label, item.split, item.defect_type, item.mask_sha256)
                    for item in items if item.label != "unlabelled"}
