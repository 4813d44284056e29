"""Colouring an anomaly map: one look for the live overlay and the console's heat maps."""

from __future__ import annotations

import cv2
import numpy as np


def heatmap(anomaly_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A JET-coloured BGR image of a 0..1 anomaly map resized to ``size`` (width, height)."""
    scaled = np.clip(anomaly_map, 0.0, 1.0) * 255.0
    resized = cv2.resize(scaled.astype(np.uint8), size, interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap(resized, cv2.COLORMAP_JET)


def heatmap_png(anomaly_map: np.ndarray, size: tuple[int, int]) -> bytes:
    """The coloured map as PNG bytes."""
    ok, encoded = cv2.imencode(".png", heatmap(anomaly_map, size))
    if not ok:
        raise ValueError("the heat map could not be encoded as PNG")
    return encoded.tobytes()
