"""Synthetic textured parts with drawn defects and masks: the test suite's images, made on the spot.

A fresh clone has no industrial data set, so the tests draw their own "magnetic tiles": a grey
surface with low-frequency shading, a lighting gradient, brushed streaks along one direction and
fine grain, and on the defective ones a crack (a jagged dark line with a branch), blowholes (dark
pits with a lighter rim) or a scratch (a long thin curved line). Every image comes with its pixel
mask (0 = good, 255 = defect), in the MTD layout the tests and the training code read::

    <root>/MT_Free/Imgs/free_0000.jpg   + free_0000.png
    <root>/MT_Crack/Imgs/crack_0000.jpg + crack_0000.png
    ...

Deterministic: image ``i`` of a class is the same for a given seed whatever the counts asked for
(its random stream is seeded by seed, class and index). A few milliseconds per image.
Only numpy and OpenCV here (no pytest), so benchmarks can use it too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

DEFAULT_COUNTS = {"MT_Free": 60, "MT_Crack": 12, "MT_Blowhole": 12, "MT_Scratch": 8}
CLASS_IDS = {"MT_Free": 0, "MT_Crack": 1, "MT_Blowhole": 2, "MT_Scratch": 3}


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A grey machined surface (float32, 0..255 scale): what every part looks like without defects."""
    base = rng.uniform(105, 135)
    # Low-frequency shading: a coarse random grid smoothly enlarged.
    shading = cv2.resize(rng.normal(0, 1, (4, 4)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    # Lighting falls off across the part in a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    gradient = (np.cos(angle) * xs / width + np.sin(angle) * ys / height) * rng.uniform(8, 20)
    # Brushed / ground structure: noise smeared along one axis.
    streaks = cv2.blur(rng.normal(0, 1, (height, width)).astype(np.float32), (41, 1)) * rng.uniform(12, 20)
    grain = rng.normal(0, 3.0, (height, width)).astype(np.float32)
    return base + shading * rng.uniform(6, 12) + gradient + streaks + grain


def _point(rng: np.random.Generator, height: int, width: int, margin: float = 0.2) -> np.ndarray:
    return np.array([rng.uniform(margin, 1 - margin) * width, rng.uniform(margin, 1 - margin) * height])


def _jagged_path(rng: np.random.Generator, start: np.ndarray, direction: float, steps: int, step: float) -> np.ndarray:
    points = [start]
    for _ in range(steps):
        direction += rng.normal(0, 0.45)
        points.append(points[-1] + step * np.array([np.cos(direction), np.sin(direction)]))
    return np.round(np.array(points)).astype(np.int32)


def draw_crack(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A dark jagged line with one branch: returns (darkening layer, mask)."""
    layer = np.zeros((height, width), np.float32)
    start, direction = _point(rng, height, width, 0.3), rng.uniform(0, 2 * np.pi)
    trunk = _jagged_path(rng, start, direction, int(rng.integers(12, 20)), rng.uniform(5, 7))
    cv2.polylines(layer, [trunk], False, 1.0, thickness=int(rng.integers(2, 4)))
    fork = trunk[len(trunk) // 2].astype(np.float64)
    branch = _jagged_path(rng, fork, direction + rng.choice([-1, 1]) * rng.uniform(0.5, 1.0), 6, 5.0)
    cv2.polylines(layer, [branch], False, 1.0, thickness=2)
    depth = rng.uniform(45, 75) * (1 + 0.3 * rng.normal(0, 1, (height, width)).astype(np.float32).clip(-2, 2))
    return cv2.GaussianBlur(layer, (3, 3), 0) * -depth, layer > 0


def draw_blowhole(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One to three dark pits with a slightly lighter rim."""
    pits = np.zeros((height, width), np.float32)
    rims = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        center = tuple(int(v) for v in _point(rng, height, width))
        axes = (int(rng.integers(6, 13)), int(rng.integers(5, 11)))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(rims, center, (axes[0] + 3, axes[1] + 3), angle, 0, 360, 1.0, -1)
        cv2.ellipse(pits, center, axes, angle, 0, 360, 1.0, -1)
    layer = cv2.GaussianBlur(pits, (5, 5), 0) * -rng.uniform(55, 80) + (rims - pits).clip(0) * 15
    return layer, pits > 0


def draw_scratch(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A long, thin, gently curved line, darker or brighter than the surface."""
    layer = np.zeros((height, width), np.float32)
    start, end = _point(rng, height, width, 0.1), _point(rng, height, width, 0.1)
    while np.linalg.norm(end - start) < 0.5 * min(height, width):
        end = _point(rng, height, width, 0.1)
    bend = (start + end) / 2 + rng.normal(0, 12, 2)
    t = np.linspace(0, 1, 40)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t**2 * end  # quadratic Bezier
    cv2.polylines(layer, [np.round(curve).astype(np.int32)], False, 1.0, thickness=2)
    return layer * rng.choice([-1, 1]) * rng.uniform(50, 65), layer > 0


DEFECTS: dict[str, Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]] = {
    "MT_Crack": draw_crack,
    "MT_Blowhole": draw_blowhole,
    "MT_Scratch": draw_scratch,
}


def make_part(defect: str, index: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of class ``defect`` ("MT_Free" for a good part): (grey uint8 image, uint8 mask)."""
    rng = np.random.default_rng([seed, CLASS_IDS[defect], index])
    height, width = int(rng.integers(224, 289)), int(rng.integers(224, 321))
    image = texture(rng, height, width)
    mask = np.zeros((height, width), bool)
    if defect != "MT_Free":
        layer, mask = DEFECTS[defect](rng, height, width)
        image = image + layer
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8) * 255


def write_parts(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write ``counts`` parts per class under ``root`` in the MTD layout (JPEG images, PNG masks); returns root."""
    for defect, count in (counts or DEFAULT_COUNTS).items():
        folder = root / defect / "Imgs"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask = make_part(defect, index, seed)
            stem = f"{defect.removeprefix('MT_').lower()}_{index:04d}"  # unique across classes, as in MTD
            cv2.imwrite(str(folder / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            cv2.imwrite(str(folder / f"{stem}.png"), mask)
    return root
