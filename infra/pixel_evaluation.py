"""Pixel metrics of an exported IR on evaluation items with defect masks: pixel AUROC and AUPRO
(anomalib's implementation), from the IR's anomaly maps as a line computes them.

Retraining compares candidate and champion on the SAME items of the new snapshot: their training
figures rest on different evaluation sets, so a pixel decision metric is measured here, for both,
the same way. Only when every anomalous item has a mask (a normal item's mask is empty).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from infra.evaluation import EvalItem

AUPRO_FPR_LIMIT = 0.3  # anomalib's default


def has_masks(items: list[EvalItem]) -> bool:
    anomalous = [item for item in items if item.anomalous]
    return bool(anomalous) and all(item.mask_sha256 for item in anomalous) and len(anomalous) < len(items)


def _decode(data: bytes, flags: int) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise ValueError("an evaluation image or mask could not be decoded")
    return image


def pixel_metrics(model_dir: Path, items: list[EvalItem], fetch: Callable[[str], bytes]) -> dict[str, float]:
    """``pixel_auroc`` and ``aupro`` of the IR under ``model_dir``; empty without masks or anomaly maps."""
    if not has_masks(items):
        return {}
    import torch
    from anomalib.metrics.aupro import _AUPRO
    from sklearn.metrics import roc_auc_score

    from infra.openvino_model import AnomalyModel

    model = AnomalyModel(model_dir)
    maps, masks = [], []
    for item in items:
        anomaly_map = model.infer(_decode(fetch(item.sha256), cv2.IMREAD_COLOR)).anomaly_map
        if anomaly_map is None:
            return {}
        height, width = anomaly_map.shape
        mask = np.zeros((height, width), dtype=bool)
        if item.mask_sha256:
            mask = cv2.resize(_decode(fetch(item.mask_sha256), cv2.IMREAD_GRAYSCALE), (width, height),
                              interpolation=cv2.INTER_NEAREST) > 0
        maps.append(anomaly_map)
        masks.append(mask)
    stacked_maps, stacked_masks = np.stack(maps), np.stack(masks)
    aupro = _AUPRO(fpr_limit=AUPRO_FPR_LIMIT)
    aupro.update(torch.from_numpy(stacked_maps), torch.from_numpy(stacked_masks.astype(np.uint8)))
    return {"pixel_auroc": float(roc_auc_score(stacked_masks.ravel(), stacked_maps.ravel())),
            "aupro": float(aupro.compute())}
