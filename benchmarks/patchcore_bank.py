"""PatchCore's memory-bank cap (issue 20 §5): bank size, image AUROC and live latency, small vs large models.

The ``cap`` case of ``benchmarks/patchcore_scale.py``. Features of the 1,000-tile split (MT_Free, every
fifth tile held out, as the ``fit1000`` case; the other 762 train) are extracted once, exactly as
PatchCore embeds them. Banks are then chosen by the platform's own selection
(``flows.training.patchcore.coreset_sampler``, seed 0): the 60-tile model (the first 60 training
tiles), the 1,000-tile model uncapped (today: anomalib's 10 %) and capped at each ``--caps`` value (see
:func:`_large_banks`). Each
bank goes into the model, which is exported with the platform's exporter; each IR is compiled as a line
compiles it (``infra.openvino_model.AnomalyModel``, LATENCY hint) and scores every held-out tile (190
MT_Free + every tile of the five MTD defect classes) one BGR frame at a time, the models interleaved
frame by frame so that all see the same machine load. Printed per model: bank size, selection time,
image AUROC of the IR's scores (what ships) and of the torch model's (must agree), and per-frame latency
p50/p95 (``AnomalyModel.infer``: resize, inference, reading outputs), with its ratio to the 60-tile model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.support import load, percentile

SMALL_TILES = 60
WARM_UP_FRAMES = 5


def _split(tiles: list[Path]) -> tuple[list[Path], list[Path]]:
    """(train, held out): every fifth MT_Free tile held out, as the fit1000 case splits them."""
    return [path for i, path in enumerate(tiles) if i % 5 != 4], [path for i, path in enumerate(tiles) if i % 5 == 4]


def _features(model: Any, train: list[Path], held_out: list[Path], cache: Path | None, embed: Any) -> tuple[Any, Any]:
    import torch

    if cache is not None and cache.is_file():
        saved = torch.load(cache)
        if saved["train"] == [p.name for p in train] and saved["held_out"] == [str(p) for p in held_out]:
            return saved["train_features"], saved["held_out_features"]
    started = time.perf_counter()
    train_features, held_out_features = embed(train, model), embed(held_out, model)
    print(f"features of {len(train)} + {len(held_out)} tiles in {time.perf_counter() - started:.0f} s",
          file=sys.stderr, flush=True)
    if cache is not None:
        torch.save({"train": [p.name for p in train], "held_out": [str(p) for p in held_out],
                    "train_features": train_features, "held_out_features": held_out_features}, cache)
    return train_features, held_out_features


def _seeded() -> None:
    import numpy as np
    import torch

    torch.manual_seed(0)
    np.random.seed(0)


def _small_bank(features: Any) -> tuple[Any, float]:
    """The platform's coreset for a small training set (images x patches x dims), and its time."""
    from flows.training.patchcore import coreset_sampler

    _seeded()
    started = time.perf_counter()
    bank = coreset_sampler(features.reshape(-1, features.shape[-1]), 0.1).sample_coreset()
    return bank, time.perf_counter() - started


def _large_banks(features: Any, caps: list[int]) -> list[tuple[int | None, Any, float]]:
    """(cap, bank, selection s) uncapped and per cap, for a training set above the exact limit.

    The platform's chunked selection, its first pass run once: with the same seed a capped selection's
    first pass is the uncapped one (same random draws), so each cap runs only its second pass from the
    random state the first pass left, giving the very bank ``coreset_sampler(..., max_size=cap)`` selects.
    Selection times include the first pass."""
    import torch

    from flows.training.coreset import ChunkedKCenterGreedy
    from flows.training.patchcore import coreset_sampler

    source = features.reshape(-1, features.shape[-1])
    _seeded()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the samplers run their selection
    try:
        started = time.perf_counter()
        uncapped = coreset_sampler(source, 0.1, max_size=None)
        if not isinstance(uncapped, ChunkedKCenterGreedy):
            raise RuntimeError("the large training set is expected above the exact limit (chunked selection)")
        space = uncapped._features()
        first = uncapped.first_pass(space)
        first_s = time.perf_counter() - started
        after_first = torch.get_rng_state()
        banks: list[tuple[int | None, Any, float]] = [(None, source[first], first_s)]
        for cap in caps:
            torch.set_rng_state(after_first)
            started = time.perf_counter()
            kept = coreset_sampler(source, 0.1, max_size=cap).second_pass(space, first)
            banks.append((cap, source[kept], first_s + time.perf_counter() - started))
        return banks
    finally:
        torch.set_num_threads(threads)


def _torch_scores(torch_model: Any, images: Any) -> Any:
    """anomalib's image scores from embeddings (its 1-NN search replaced by the platform's, as in training)."""
    from flows.training import neighbours

    scores = []
    for start in range(0, len(images), 16):
        batch = images[start:start + 16]
        count, patches, dims = batch.shape
        embedding = batch.reshape(-1, dims)
        distance, location = neighbours.nearest(embedding, torch_model.memory_bank)
        scores.append(torch_model.compute_anomaly_score(distance.reshape(count, patches),
                                                        location.reshape(count, patches), embedding))
    import torch

    return torch.cat(scores).numpy()


def _export(model: Any, bank: Any, raw_scores: Any, out_dir: Path) -> Path:
    """The model with this bank, exported as training exports it. Its post-processor maps raw scores
    linearly into 0..1 without clamping any held-out tile (AUROC is then the raw scores')."""
    import torch

    from flows.training.export import export

    model.model.memory_bank = bank
    top = float(raw_scores.max()) * 10
    processor = model.post_processor
    for prefix in ("image", "pixel"):
        getattr(processor, f"{prefix}_min").fill_(0.0)
        getattr(processor, f"{prefix}_max").fill_(top)
        getattr(processor, f"_{prefix}_threshold").copy_(torch.tensor(top / 2))
    return export(model, "patchcore", {}, "openvino", out_dir)


def cap_case(caps: list[int], data_dir: Path, tmp: Path, tiles: Any, embed: Any, parameters: dict,
             defects: tuple[str, ...], cache: Path | None = None) -> dict:
    import cv2
    from sklearn.metrics import roc_auc_score

    from flows.training.build import build_model
    from infra.anomaly.backbones import activate_hub_cache
    from infra.anomaly.catalog import validate_parameters
    from infra.openvino_model import AnomalyModel

    activate_hub_cache(data_dir)
    model = build_model("patchcore", validate_parameters("patchcore", parameters)).eval()
    train, normal = _split(tiles("MT_Free"))
    anomalous = [path for defect in defects for path in tiles(defect)]
    held_out = normal + anomalous
    labels = [0] * len(normal) + [1] * len(anomalous)
    train_features, held_out_features = _features(model, train, held_out, cache, embed)

    models: dict[str, dict[str, Any]] = {}
    small = train_features[:SMALL_TILES]
    plans = [(f"{SMALL_TILES} tiles", SMALL_TILES, *_small_bank(small))]
    for cap, bank, select_s in _large_banks(train_features, caps):
        plans.append((f"{len(train)} tiles, " + ("uncapped (today)" if cap is None else f"cap {cap}"), len(train),
                      bank, select_s))
    for name, tiles_used, bank, select_s in plans:
        model.model.memory_bank = bank
        raw = _torch_scores(model.model, held_out_features)
        ir = _export(model, bank, raw, tmp / f"ir-{len(models)}")
        models[name] = {"bank": int(bank.shape[0]), "train_tiles": tiles_used, "select_s": select_s,
                        "torch_auroc": float(roc_auc_score(labels, raw)), "ir": AnomalyModel(ir),
                        "scores": [], "ms": []}
        print(f"  {name}: bank {bank.shape[0]}, selection {select_s:.1f} s, torch AUROC "
              f"{models[name]['torch_auroc']:.4f}, load {load()}", file=sys.stderr, flush=True)

    names = list(models)
    for index, path in enumerate(held_out):
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        for name in names[index % len(names):] + names[:index % len(names)]:  # rotate the order
            prediction = models[name]["ir"].infer(frame)
            models[name]["scores"].append(prediction.score)
            if index >= WARM_UP_FRAMES:
                models[name]["ms"].append(prediction.inference_ms)
    rows = []
    for name, entry in models.items():
        rows.append({"model": name, "bank": entry["bank"], "train_tiles": entry["train_tiles"],
                     "select_s": round(entry["select_s"], 1), "torch_auroc": round(entry["torch_auroc"], 4),
                     "ir_auroc": round(float(roc_auc_score(labels, entry["scores"])), 4),
                     "p50_ms": round(percentile(entry["ms"], 50), 1), "p95_ms": round(percentile(entry["ms"], 95), 1),
                     "frames": len(entry["ms"])})
    print(f"  {json.dumps(rows)}", file=sys.stderr, flush=True)
    return {"rows": rows, "normal": len(normal), "anomalous": len(anomalous), "load": load()}


def print_cap(result: dict) -> None:
    rows = result["rows"]
    small, large = rows[0], rows[1]
    print(f"\nMemory-bank cap: {result['normal']} held-out MT_Free + {result['anomalous']} defect tiles, each IR "
          f"scoring single BGR frames (AnomalyModel.infer, LATENCY hint, models interleaved frame by frame); "
          f"targets: p95 ≤ 1.5x the {SMALL_TILES}-tile model's, image AUROC within ±0.005 of the uncapped "
          f"model's; load {result['load']}")
    header = ["model", "bank", "selection s", "image AUROC (IR)", "(torch)", "Δ AUROC vs uncapped", "p50 ms",
              "p95 ms", f"p95 / {SMALL_TILES}-tile"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        print(" | ".join([row["model"], str(row["bank"]), f"{row['select_s']:.1f}", f"{row['ir_auroc']:.4f}",
                          f"{row['torch_auroc']:.4f}", f"{row['ir_auroc'] - large['ir_auroc']:+.4f}",
                          f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}", f"{row['p95_ms'] / small['p95_ms']:.2f}x"]))
