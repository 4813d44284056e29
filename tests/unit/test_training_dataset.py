"""Snapshot -> training folders -> anomalib Folder datamodule."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from anomalib.data.utils.synthetic import SyntheticAnomalyDataset
from PIL import Image

from flows.training.dataset import DatasetError, DatasetItem, build_datamodule, loader_workers, materialise
from tests.conftest import png_bytes


def _jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, shade, shade)).save(buffer, format="JPEG")
    return buffer.getvalue()


BLOBS = {f"n{i}": _jpeg(100 + i) for i in range(8)} | {"a0": _jpeg(10), "a1": _jpeg(20), "m0": _jpeg(255)}


def test_materialise_writes_the_folder_layout(tmp_path: Path) -> None:
    items = [DatasetItem(f"good-{i}.jpg", "normal", f"n{i}") for i in range(8)]
    items += [("bad-0.jpg", "anomalous", "a0", "m0"), ("bad-1.jpg", "anomalous", "a1", "m0")]  # plain tuples work too
    layout = materialise(items, BLOBS.__getitem__, tmp_path)
    assert (layout.normal, layout.anomalous, layout.masks, layout.has_masks) == (8, 2, 2, True)
    assert (tmp_path / "normal" / "good-3.jpg").read_bytes() == BLOBS["n3"]
    mask = tmp_path / "masks" / "bad-1.png"  # paired with its image by name; stored as PNG whatever it came as
    assert mask.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (DatasetItem("../escape.jpg", "normal", "n0"), "unsafe file name"),
        (DatasetItem("a/b.jpg", "normal", "n0"), "unsafe file name"),
        (DatasetItem(".hidden", "normal", "n0"), "unsafe file name"),
        (DatasetItem("ok.jpg", "defective", "n0"), "unknown label"),
    ],
)
def test_materialise_refuses_bad_items(tmp_path: Path, item: DatasetItem, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        materialise([item], BLOBS.__getitem__, tmp_path)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="duplicate"):
        materialise([DatasetItem("x.jpg", "normal", "n0"), DatasetItem("x.jpg", "normal", "n1")], BLOBS.__getitem__,
                    tmp_path)


def test_held_out_normals_and_anomalous_images_form_the_test_set(tmp_path: Path) -> None:
    items = [DatasetItem(f"good-{i}.jpg", "normal", f"n{i}") for i in range(8)]
    items += [DatasetItem("bad-0.jpg", "anomalous", "a0"), DatasetItem("bad-1.jpg", "anomalous", "a1")]
    materialise(items, BLOBS.__getitem__, tmp_path)
    datamodule = build_datamodule(tmp_path, holdout_ratio=0.25)
    datamodule.setup()
    train_names = {Path(path).name for path in datamodule.train_data.samples.image_path}
    test = datamodule.test_data.samples
    assert len(train_names) == 6 and all(name.startswith("good") for name in train_names)
    assert sorted(test.label_index.tolist()) == [0, 0, 1, 1]
    assert not train_names & {Path(path).name for path in test.image_path}  # held out means held out
    assert len(datamodule.val_data) == len(datamodule.test_data)


def test_without_anomalous_images_the_test_set_is_synthetic(tmp_path: Path) -> None:
    materialise([DatasetItem(f"good-{i}.png", "normal", f"p{i}") for i in range(8)],
                lambda ref: png_bytes((64, 48), (90 + int(ref[1:]), 100, 110)), tmp_path)
    datamodule = build_datamodule(tmp_path)
    datamodule.setup()
    assert isinstance(datamodule.test_data, SyntheticAnomalyDataset)
    assert set(datamodule.test_data.samples.label_index.tolist()) == {0, 1}


def test_too_few_normal_images(tmp_path: Path) -> None:
    materialise([DatasetItem("bad.jpg", "anomalous", "a0")], BLOBS.__getitem__, tmp_path)
    with pytest.raises(DatasetError, match="at least 2 normal images"):
        build_datamodule(tmp_path)


def _names(dataset) -> set[str]:
    return {Path(path).name for path in dataset.samples.image_path}


def test_the_snapshot_split_decides_what_is_fitted_and_what_is_evaluated(tmp_path: Path) -> None:
    items = [DatasetItem(f"good-{i}.jpg", "normal", f"n{i}", split="eval" if i < 3 else "train") for i in range(8)]
    items += [DatasetItem("bad-0.jpg", "anomalous", "a0", split="eval"),
              DatasetItem("bad-1.jpg", "anomalous", "a1", split="train"),  # anomalous: evaluated whatever it says
              DatasetItem("later.jpg", "unlabelled", "n0", split="train"),
              DatasetItem("later-2.jpg", "unlabelled", "n1", split="eval")]
    layout = materialise(items, BLOBS.__getitem__, tmp_path)
    assert (layout.normal, layout.normal_eval, layout.anomalous, layout.skipped) == (5, 3, 2, 2)
    datamodule = build_datamodule(tmp_path, holdout_ratio=0.25)
    datamodule.setup()
    assert _names(datamodule.train_data) == {f"good-{i}.jpg" for i in range(3, 8)}  # all train normals, none held out
    assert _names(datamodule.test_data) == {"good-0.jpg", "good-1.jpg", "good-2.jpg", "bad-0.jpg", "bad-1.jpg"}
    assert not (tmp_path / "unlabelled").exists()  # never trained on nor evaluated


def test_eval_normals_become_the_synthetic_test_set_without_anomalous_images(tmp_path: Path) -> None:
    items = [DatasetItem(f"good-{i}.png", "normal", f"p{i}", split="eval" if i < 4 else "train") for i in range(10)]
    materialise(items, lambda ref: png_bytes((64, 48), (90 + int(ref[1:]), 100, 110)), tmp_path)
    datamodule = build_datamodule(tmp_path)
    datamodule.setup()
    assert _names(datamodule.train_data) == {f"good-{i}.png" for i in range(4, 10)}
    assert isinstance(datamodule.test_data, SyntheticAnomalyDataset)
    assert sorted(datamodule.test_data.samples.label_index.tolist()) == [0, 0, 1, 1]  # from the 4 eval normals


def test_a_single_eval_normal_without_anomalies_falls_back_to_a_holdout(tmp_path: Path) -> None:
    items = [DatasetItem(f"good-{i}.png", "normal", f"p{i}", split="eval" if i == 0 else "train") for i in range(8)]
    materialise(items, lambda ref: png_bytes((64, 48), (90 + int(ref[1:]), 100, 110)), tmp_path)
    datamodule = build_datamodule(tmp_path, holdout_ratio=0.25)
    datamodule.setup()
    assert len(datamodule.train_data) == 6 and isinstance(datamodule.test_data, SyntheticAnomalyDataset)
    assert set(datamodule.test_data.samples.label_index.tolist()) == {0, 1}


def test_unknown_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown split"):
        materialise([DatasetItem("x.jpg", "normal", "n0", split="test")], BLOBS.__getitem__, tmp_path)


def test_large_images_load_in_worker_processes_small_ones_inline(tmp_path: Path) -> None:
    assert loader_workers(tmp_path, (256, 256)) == 0  # no normal/ folder yet
    small, large = tmp_path / "small", tmp_path / "large"
    materialise([DatasetItem("a.jpg", "normal", "n0")], BLOBS.__getitem__, small)
    big = io.BytesIO()
    Image.new("RGB", (1600, 800)).save(big, format="PNG")
    materialise([DatasetItem("a.png", "normal", "big")], {"big": big.getvalue()}.__getitem__, large)
    assert loader_workers(small, (256, 256)) == 0
    assert loader_workers(large, (256, 256)) == 2
    assert loader_workers(large, (1024, 1024)) == 0  # within 4x the model input: decoding is cheap
