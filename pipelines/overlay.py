"""Draws what the model saw onto the frame: a heat map of the anomaly map, a label and the score."""

from __future__ import annotations

import cv2
import numpy as np

from infra.heatmap import heatmap

HEATMAP_ALPHA = 0.4
_RED = (40, 40, 220)
_GREEN = (60, 170, 60)
_WHITE = (255, 255, 255)


def annotate(
    frame_bgr: np.ndarray,
    anomaly_map: np.ndarray | None,
    score: float,
    is_anomalous: bool,
    alpha: float = HEATMAP_ALPHA,
) -> np.ndarray:
    """A new BGR image: the heat map blended on the frame plus a banner with label and score."""
    height, width = frame_bgr.shape[:2]
    if anomaly_map is not None:
        image = cv2.addWeighted(frame_bgr, 1.0 - alpha, heatmap(anomaly_map, (width, height)), alpha, 0.0)
    else:
        image = frame_bgr.copy()
    text = f"{'ANOMALY' if is_anomalous else 'NORMAL'} {score:.2f}"
    scale = max(0.4, min(width, height) / 600)
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(3, text_h // 3)
    cv2.rectangle(image, (0, 0), (text_w + 2 * pad, text_h + baseline + 2 * pad), _RED if is_anomalous else _GREEN, -1)
    cv2.putText(image, text, (pad, pad + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale, _WHITE, thickness, cv2.LINE_AA)
    return image
