"""The suite's own images: deterministic, in the MTD layout, with masks where (and only where) defects are."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.synthetic_parts import DEFECTS, make_part, write_parts


def test_parts_are_deterministic_per_index_whatever_the_counts(tmp_path: Path) -> None:
    small = write_parts(tmp_path / "small", {"MT_Free": 2, "MT_Crack": 1})
    large = write_parts(tmp_path / "large", {"MT_Free": 5, "MT_Crack": 3})
    for relative in ("MT_Free/Imgs/free_0001.jpg", "MT_Crack/Imgs/crack_0000.jpg", "MT_Crack/Imgs/crack_0000.png"):
        assert (small / relative).read_bytes() == (large / relative).read_bytes(), relative
    assert not np.array_equal(make_part("MT_Free", 0)[0], make_part("MT_Free", 1)[0])
    assert not np.array_equal(make_part("MT_Free", 0, seed=1)[0], make_part("MT_Free", 0)[0])


def test_layout_names_and_masks(tmp_path: Path) -> None:
    root = write_parts(tmp_path, {"MT_Free": 2, **{defect: 2 for defect in DEFECTS}})
    names = [path.name for path in sorted(root.glob("*/Imgs/*.jpg"))]
    assert len(names) == len(set(names)) == 8  # unique across classes, as training needs
    for image_path in root.glob("*/Imgs/*.jpg"):
        image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(image_path.with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert image.ndim == 2 and image.shape == mask.shape and set(np.unique(mask)) <= {0, 255}
        if image_path.parent.parent.name == "MT_Free":
            assert not mask.any()
        else:
            assert 0.0005 < (mask > 0).mean() < 0.1, image_path  # a visible defect, not the whole part


def test_defects_stand_out_from_the_surface_they_are_drawn_on() -> None:
    for defect in DEFECTS:
        for index in range(4):
            image, mask = make_part(defect, index)
            inside, around = image[mask > 0].astype(float), image[cv2.dilate(mask, np.ones((15, 15))) == 0]
            assert abs(np.median(inside) - np.median(around)) > 25, (defect, index)
