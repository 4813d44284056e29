"""PatchCore on large projects (issue 11, target 2): three job sizes and the AUROC/time trade-off of the coreset.

Cases (``--cases``, all by default):

- ``auroc``: features of 160 MT_Free training tiles (256², mobilenetv2_100 blocks.2+4, as the platform
  builds the model) are extracted once; the memory bank is then chosen by anomalib's exact k-center
  greedy (the platform's exact selection returns anomalib's very indices, unit-tested) and by the chunked
  greedy at several chunk sizes. Each bank scores 192 MT_Free evaluation tiles and every tile of each
  MTD defect class with anomalib's own scoring; the table prints image AUROC per class, its difference
  to exact, and the selection time. This is the plain-anomalib baseline: anomalib's ``Engine.fit`` on
  larger sets takes far too long (its coreset took 17 minutes for 260 tiles).
- ``mtd``: the 200 + 60 MTD job through the platform (API submit → Prefect job completed).
- ``large``: 335 images of 800x1600 PNG (MTD tiles, resized; 275 normal + 60 anomalous) through the platform.
- ``fit1000``: 1,000 MTD tiles (952 MT_Free, a fifth of them held out, + 48 defects): the training core's
  fit and test in a fresh process with the worker's allocator; prints fit time and peak RSS.

    .venv/bin/python benchmarks/patchcore_scale.py
    .venv/bin/python benchmarks/patchcore_scale.py --cases auroc --chunks 4096 16384
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.support import load  # noqa: E402
from benchmarks.training import MTD_DIR, platform_job, platform_project, wait_until_worker_idle  # noqa: E402

DEFECTS = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
PARAMETERS = {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "blocks.4"]}
# Measured before this work (issue 11), same machine kind: the reference for the job cases.
BEFORE = {"mtd": "fit 46 s, test 12 s, export 9 s (67 s of work)",
          "large": "submit→completed 308 s: fit 221 s, test 69 s, export 13 s"}


def _tiles(folder: str) -> list[Path]:
    return sorted((MTD_DIR / folder / "Imgs").glob("*.jpg"))


def _embed(paths: list[Path], model: Any) -> Any:
    """images x patches x dims, exactly as PatchCore embeds them."""
    import torch
    from anomalib.data.utils import read_image

    transform, torch_model, out = model.pre_processor.transform, model.model.eval(), []
    with torch.no_grad():
        for start in range(0, len(paths), 8):
            batch = torch.stack([transform(read_image(path, as_tensor=True)) for path in paths[start:start + 8]])
            features = torch_model.feature_extractor(batch)
            embedding = torch_model.generate_embedding(
                {layer: torch_model.feature_pooler(value) for layer, value in features.items()})
            out.append(embedding.permute(0, 2, 3, 1).reshape(embedding.shape[0], -1, embedding.shape[1]))
    return torch.cat(out)


def auroc_tradeoff(chunks: list[int], data_dir: Path) -> list[dict]:
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from flows.training.build import build_model
    from flows.training.coreset import ChunkedKCenterGreedy, FastKCenterGreedy
    from infra.anomaly.backbones import activate_hub_cache
    from infra.anomaly.catalog import validate_parameters

    activate_hub_cache(data_dir)
    model = build_model("patchcore", validate_parameters("patchcore", PARAMETERS))
    good = _tiles("MT_Free")
    started = time.perf_counter()
    train = _embed([path for i, path in enumerate(good[:200]) if i % 5 != 4], model)
    sets = {"normal": _embed([path for i, path in enumerate(good[:200]) if i % 5 == 4] + good[200:352], model)}
    sets.update({defect: _embed(_tiles(defect), model) for defect in DEFECTS})
    print(f"features of {len(train)} + {sum(len(v) for v in sets.values())} tiles in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    bank_source = train.reshape(-1, train.shape[-1])
    torch_model = model.model

    def scores(images: Any) -> Any:
        batch, patches, dims = images.shape
        embedding = images.reshape(-1, dims)
        distance, location = torch_model.nearest_neighbors(embedding, n_neighbors=1)  # anomalib's own search
        return torch_model.compute_anomaly_score(distance.reshape(batch, patches), location.reshape(batch, patches),
                                                 embedding).numpy()

    rows = []
    for variant in ["exact", *chunks]:
        torch.manual_seed(0)
        np.random.seed(0)
        started = time.perf_counter()
        if variant == "exact":
            sampler = FastKCenterGreedy(bank_source, 0.1)
        else:
            sampler = ChunkedKCenterGreedy(bank_source, 0.1, chunk_points=variant)
        torch_model.memory_bank = sampler.sample_coreset()
        select_s = time.perf_counter() - started
        normal = scores(sets["normal"])
        row = {"variant": variant, "select_s": select_s, "bank": len(torch_model.memory_bank)}
        defects_all = []
        for defect in DEFECTS:
            bad = scores(sets[defect])
            defects_all.append(bad)
            row[defect] = roc_auc_score([0] * len(normal) + [1] * len(bad), np.concatenate([normal, bad]))
        bad = np.concatenate(defects_all)
        row["all"] = roc_auc_score([0] * len(normal) + [1] * len(bad), np.concatenate([normal, bad]))
        rows.append(row)
        print(f"  {variant}: {select_s:.1f} s", file=sys.stderr)
    return rows


def _large_images(folder: Path) -> dict[str, list[Path]]:
    """335 MTD tiles resized to 800x1600 PNG (the size of the project in the issue)."""
    from PIL import Image

    def write(paths: list[Path], label: str) -> list[Path]:
        out = []
        for path in paths:
            target = folder / label / f"{path.parent.parent.name}_{path.stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as image:
                image.convert("RGB").resize((1600, 800), Image.Resampling.BICUBIC).save(target, compress_level=1)
            out.append(target)
        return out

    return {"normal": write(_tiles("MT_Free")[:275], "normal"),
            "anomalous": write(_tiles("MT_Blowhole")[:30] + _tiles("MT_Crack")[:30], "anomalous")}


def platform_case(files: dict[str, list[Path]]) -> dict:
    with platform_project(files) as (client, project_id, snapshot_id, stack, _dataset):
        if stack.settings.worker_start != "cold":
            wait_until_worker_idle(stack.workers["training"].pid)
        job = platform_job(client, project_id, snapshot_id, "patchcore", PARAMETERS)
        job["load"] = load()
        return job


def fit_child(dataset: Path, work: Path) -> dict:
    """Runs in the child: the training core's fit and test, as the training flow runs them."""
    from flows.training.trainer import TrainingSteps

    steps = TrainingSteps(dataset, "patchcore", PARAMETERS, work, data_dir=work / "data")
    steps.fit()
    steps.evaluate()
    result = steps.result()
    return {**result.timings, **{key: value for key, value in result.dataset.items() if key.startswith("coreset")},
            "train_images": result.dataset["train_images"], "image_auroc": result.metrics.get("image_auroc"),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def fit1000_case(tmp: Path) -> dict:
    from flows.training.dataset import DatasetItem, materialise
    from infra.supervisor.environment import allocator_env

    items = [DatasetItem(path.name, "normal", str(path), None, "eval" if i % 5 == 4 else "train")
             for i, path in enumerate(_tiles("MT_Free"))]
    items += [DatasetItem(f"{defect}_{path.name}", "anomalous", str(path), str(path.with_suffix(".png")))
              for defect in DEFECTS for path in _tiles(defect)[:48 // len(DEFECTS) + (defect == DEFECTS[0]) * 3]]
    dataset = tmp / "fit1000"
    materialise(items, lambda ref: Path(ref).read_bytes(), dataset)
    env = {**os.environ, **allocator_env(), "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, "--fit-child", str(dataset), str(tmp / "work")],
                         env=env, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"1,000-tile fit failed:\n{out.stderr[-3000:]}")
    return {**json.loads(lines[-1][len("RESULT "):]), "tiles": len(items), "load": load()}


def _print_tradeoff(rows: list[dict]) -> None:
    exact = rows[0]
    print("\nCoreset selection: image AUROC per MTD defect class (192 normal eval tiles vs every tile of the class),"
          " 160 training tiles (163,840 patches, coreset 10 %)")
    header = ["selection", "select s", "speed-up", *[d.removeprefix("MT_") for d in DEFECTS], "all", "max |Δ| vs exact"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        name = "exact (= anomalib)" if row["variant"] == "exact" else f"chunked {row['variant']}"
        cells = [f"{row[d]:.4f} ({row[d] - exact[d]:+.4f})" for d in (*DEFECTS, "all")]
        worst = max(abs(row[d] - exact[d]) for d in DEFECTS)
        print(" | ".join([name, f"{row['select_s']:.1f}", f"{exact['select_s'] / row['select_s']:.1f}x", *cells,
                          f"{worst:.4f}"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["auroc", "mtd", "large", "fit1000"],
                        choices=["auroc", "mtd", "large", "fit1000"])
    parser.add_argument("--chunks", nargs="+", type=int, default=[4096, 16384],
                        help="chunk sizes (patches) of the chunked greedy to compare with exact")
    parser.add_argument("--fit-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_child:
        print("RESULT " + json.dumps(fit_child(*args.fit_child)), flush=True)
        return

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-patchcore-") as tmp:
        tmp_path = Path(tmp)
        for case in args.cases:
            print(f"{case}...", file=sys.stderr)
            if case == "auroc":
                results[case] = auroc_tradeoff(args.chunks, tmp_path / "data")
            elif case == "mtd":
                results[case] = platform_case({"normal": _tiles("MT_Free")[:200],
                                               "anomalous": _tiles("MT_Blowhole")[:30] + _tiles("MT_Crack")[:30]})
            elif case == "large":
                results[case] = platform_case(_large_images(tmp_path / "large"))
            else:
                results[case] = fit1000_case(tmp_path)
            print(f"{case}: {json.dumps(results[case], default=str)}", file=sys.stderr, flush=True)  # as it comes

    print(f"\nPatchCore, {PARAMETERS['backbone']} {'+'.join(PARAMETERS['layers'])}, 256x256; {os.cpu_count()} CPUs; "
          f"load average now {load()}")
    if "auroc" in results:
        _print_tradeoff(results["auroc"])
    jobs = [(case, results[case]) for case in ("mtd", "large") if case in results]
    if jobs:
        print("\nPlatform jobs (API submit → completed), target ≤ 60 s (mtd) / ≤ 120 s (large)")
        header = ["case", "submit→completed s", "fit s", "test s", "export s", "image AUROC", "load", "before"]
        print(" | ".join(header))
        print(" | ".join("---" for _ in header))
        for case, job in jobs:
            print(" | ".join([case, f"{job['submit_to_completed_s']:.1f}", f"{job['fit_s']:.1f}",
                              f"{job['test_s']:.1f}", f"{job['export_s']:.1f}", f"{job['image_auroc']:.4f}",
                              job["load"], BEFORE[case]]))
    if "fit1000" in results:
        fit = results["fit1000"]
        print(f"\n1,000 MTD tiles ({fit['train_images']} training): fit {fit['fit_s']:.1f} s (target ≤ 180 s), "
              f"test {fit['test_s']:.1f} s, peak RSS {fit['peak_rss_gib']:.2f} GiB (target < 8 GiB), "
              f"{fit.get('coreset_selection')} of {fit.get('coreset_size')} from {fit.get('coreset_patches')} "
              f"patches, image AUROC {fit['image_auroc']:.4f}, load {fit['load']}")


if __name__ == "__main__":
    main()
