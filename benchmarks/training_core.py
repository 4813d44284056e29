"""PatchCore/PaDiM fit time: plain anomalib ``Engine.fit`` against the platform's training core.

Same data, model, seed and datamodule for both; each variant runs in a fresh process (allocator
state matters here). Prints fit time, test metrics and whether the fitted memory banks are
bit-identical. Usage::

    .venv/bin/python benchmarks/training_core.py --arch patchcore --normal 64 --defects 8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MTD = REPO.parent / "shared" / "data" / "mtd"

from benchmarks.support import materialise_mtd_slice  # noqa: E402


def _run_variant(variant: str, arch: str, root: Path, work: Path, params: dict) -> dict:
    """One fit + test in this process; ``fast`` is what ``flows.training.trainer.train`` does."""
    from contextlib import nullcontext

    from anomalib.engine import Engine
    from lightning.pytorch import seed_everything

    from flows.training.build import build_model
    from flows.training.coreset import fast_coreset
    from flows.training.dataset import build_datamodule
    from infra.anomaly.backbones import activate_hub_cache
    from infra.anomaly.catalog import validate_parameters

    activate_hub_cache(work / "data")
    resolved = validate_parameters(arch, params)
    seed_everything(42, workers=True, verbose=False)
    datamodule = build_datamodule(root, holdout_ratio=0.25, seed=42)
    model = build_model(arch, resolved)
    engine = Engine(accelerator="cpu", devices=1, logger=False, default_root_dir=work / variant,
                    enable_progress_bar=False, enable_model_summary=False)
    context = fast_coreset(model) if variant == "fast" and arch == "patchcore" else nullcontext()
    started = time.perf_counter()
    with context:
        engine.fit(model=model, datamodule=datamodule)
    fit_s = time.perf_counter() - started
    metrics = engine.test(model=model, datamodule=datamodule, verbose=False)[0]
    state = model.model.state_dict()
    digest = hashlib.sha256(b"".join(state[key].numpy().tobytes() for key in sorted(state))).hexdigest()[:16]
    return {
        "variant": variant,
        "fit_s": round(fit_s, 2),
        "train_images": len(datamodule.train_data),
        "image_auroc": round(float(metrics["image_AUROC"]), 6),
        "pixel_auroc": round(float(metrics.get("pixel_AUROC", float("nan"))), 6),
        "state_sha256": digest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="patchcore", choices=["patchcore", "padim"])
    parser.add_argument("--backbone", default="mobilenetv2_100")
    parser.add_argument("--normal", type=int, default=64, help="MT_Free tiles (a quarter is held out for testing)")
    parser.add_argument("--defects", type=int, default=8, help="MT_Blowhole and MT_Crack tiles each")
    parser.add_argument("--variants", default="plain,fast")
    parser.add_argument("--_child", nargs=3, metavar=("VARIANT", "ROOT", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    params = {"backbone": args.backbone}
    if args._child:
        warnings.filterwarnings("ignore")
        variant, root, work = args._child
        print("RESULT " + json.dumps(_run_variant(variant, args.arch, Path(root), Path(work), params)), flush=True)
        return

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        root, work = Path(tmp) / "dataset", Path(tmp) / "work"
        materialise_mtd_slice(MTD, root, args.normal, args.defects)
        rows = []
        for variant in args.variants.split(","):
            command = [sys.executable, __file__, "--arch", args.arch, "--backbone", args.backbone,
                       "--_child", variant, str(root), str(work)]
            output = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
            lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                sys.exit(f"{variant} failed:\n{output.stderr[-3000:]}")
            rows.append(json.loads(lines[-1][len("RESULT "):]))
    load = os.getloadavg()[0]
    print(f"\n{args.arch} ({args.backbone}), {rows[0]['train_images']} training images, 256x256, "
          f"{os.cpu_count()} cores, load average {load:.1f}; baseline: the first variant ({rows[0]['variant']}), "
          f"same run")
    print(f"{'variant':<8} {'fit s':>8} {'image AUROC':>12} {'pixel AUROC':>12}  state sha256")
    for row in rows:
        print(f"{row['variant']:<8} {row['fit_s']:>8.2f} {row['image_auroc']:>12.6f} {row['pixel_auroc']:>12.6f}  "
              f"{row['state_sha256']}")
    if len(rows) == 2:
        same = rows[0]["state_sha256"] == rows[1]["state_sha256"] and rows[0]["image_auroc"] == rows[1]["image_auroc"]
        print(f"speed-up {rows[0]['fit_s'] / rows[1]['fit_s']:.1f}x; identical model and metrics: {same}")


if __name__ == "__main__":
    main()
