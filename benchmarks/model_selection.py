"""Automatic model selection on real data (MTD), judged on images it never saw.

Starts the platform's stack on free ports and a temporary data dir, and splits the MTD tiles
(read in place, never copied into the repository) three ways by sorted name:

- **train**: the first ``--train`` MT_Free tiles (split `train`);
- **eval**: the next ``--eval`` MT_Free tiles and every other tile of each defect class (split `eval`):
  what the selection sees;
- **holdout**: the next ``--holdout`` MT_Free tiles and the remaining defect tiles: in neither
  training nor evaluation, so they judge the choice in hindsight.

Then one `"architecture": "auto"` job (the default candidate set, or ``--candidates``) through the
API, and, for the verdict, every trained candidate once more on its own as a plain training job on
the same snapshot, whose stored IR scores the hold-out images (the same seed and data: the same
model as in the search). Prints each candidate's evaluation AUROC and search seconds, its hold-out
AUROC, the choice and why, the best candidate in hindsight, whether the choice is within 0.005
hold-out AUROC of it, and the whole search against training that best candidate alone; the
1-minute load beside the times.

    nice -n 10 .venv/bin/python benchmarks/model_selection.py
    .venv/bin/python benchmarks/model_selection.py --train 60 --eval 20 --holdout 60 \\
        --candidates '[{"architecture": "padim", "parameters": {"backbone": "mobilenetv2_100"}}]'
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.support import load  # noqa: E402
from benchmarks.training import MTD_DIR, platform_project, wait_until_worker_idle  # noqa: E402

DEFECTS = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")
BOUND = 0.005  # the choice must be within this hold-out image AUROC of the best in hindsight


def split_files(train: int, evaluate: int, holdout: int, per_defect: int | None = None) -> dict[str, list[Path]]:
    good = sorted((MTD_DIR / "MT_Free" / "Imgs").glob("*.jpg"))
    if len(good) < train + evaluate + holdout:
        raise SystemExit(f"MT_Free has {len(good)} tiles; asked for {train + evaluate + holdout}")
    parts: dict[str, list[Path]] = {"train": good[:train], "eval_good": good[train:train + evaluate],
                                    "holdout_good": good[train + evaluate:train + evaluate + holdout],
                                    "eval_bad": [], "holdout_bad": []}
    for defect in DEFECTS:
        tiles = sorted((MTD_DIR / defect / "Imgs").glob("*.jpg"))[:per_defect]
        parts["eval_bad"] += tiles[0::2]
        parts["holdout_bad"] += tiles[1::2]
    return parts


def pin_splits(eval_names: set[str]) -> Any:
    """Before the snapshot: every uploaded tile in the split this benchmark gives it (not the hash rule's)."""
    def pin(client: Any, project_id: str) -> None:
        offset = 0
        while True:
            page = client.get(f"/api/projects/{project_id}/media", params={"limit": 200, "offset": offset}).json()
            for item in page["items"]:
                wanted = "eval" if item["filename"] in eval_names or item["label"] == "anomalous" else "train"
                if item["split"] != wanted:
                    client.patch(f"/api/media/{item['id']}", json={"split": wanted}).raise_for_status()
            offset += len(page["items"])
            if offset >= page["total"] or not page["items"]:
                return
    return pin


def run_job(client: Any, project_id: str, body: dict[str, Any], timeout_s: float = 6 * 3600) -> dict[str, Any]:
    """Submit a training job; wait for it; returns the job, the model and the wall seconds."""
    started = time.monotonic()
    response = client.post(f"/api/projects/{project_id}/train", json=body)
    response.raise_for_status()
    accepted = response.json()
    while True:
        job = client.get(f"/api/jobs/{accepted['job_id']}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"job {accepted['job_id']} still {job['status']} after {timeout_s:.0f} s")
        time.sleep(1.0)
    seconds = time.monotonic() - started
    if job["status"] != "completed":
        raise RuntimeError(f"job ended {job['status']}: {job['error']}")
    return {"job": job, "model": client.get(f"/api/models/{accepted['model_id']}").json(), "seconds": seconds,
            "load": load()}


def holdout_auroc(store: Any, model_id: str, images: list[bytes], labels: list[bool]) -> float:
    """Image AUROC of the model's stored IR on the hold-out tiles, scored as a line scores frames."""
    from infra.model_files import download_folder, openvino_prefix
    from infra.openvino_model import score_images
    from infra.score_stats import auroc

    with tempfile.TemporaryDirectory(prefix="bench-selection-") as tmp:
        download_folder(store, openvino_prefix(model_id), Path(tmp))
        return float(auroc(labels, score_images(Path(tmp), images)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--eval", type=int, default=60)
    parser.add_argument("--holdout", type=int, default=200)
    parser.add_argument("--defects-per-class", type=int, help="first N tiles of each defect class (default: all)")
    parser.add_argument("--candidates", help="JSON list of {architecture, parameters}; default: the platform's set")
    parser.add_argument("--time-budget-s", type=float)
    args = parser.parse_args()
    parts = split_files(args.train, args.eval, args.holdout, args.defects_per_class)
    uploads = {"normal": parts["train"] + parts["eval_good"], "anomalous": parts["eval_bad"]}
    eval_names = {path.name for path in parts["eval_good"]}
    holdout = [(path.read_bytes(), False) for path in parts["holdout_good"]] + \
              [(path.read_bytes(), True) for path in parts["holdout_bad"]]
    images, labels = [data for data, _ in holdout], [label for _, label in holdout]
    print(f"MTD: train {len(parts['train'])} good; eval {len(parts['eval_good'])} good + {len(parts['eval_bad'])} "
          f"defective; hold-out {len(parts['holdout_good'])} good + {len(parts['holdout_bad'])} defective "
          f"({', '.join(DEFECTS)})", file=sys.stderr)

    with platform_project(uploads, before_snapshot=pin_splits(eval_names)) as (client, project_id, snapshot_id,
                                                                               stack, _):
        from infra.storage import build_store

        store = build_store(stack.settings)
        body: dict[str, Any] = {"model_name": "auto", "architecture": "auto", "snapshot_id": snapshot_id}
        if args.candidates:
            body["candidates"] = json.loads(args.candidates)
        if args.time_budget_s:
            body["time_budget_s"] = args.time_budget_s
        wait_until_worker_idle(stack.workers["training"].pid)
        print("search...", file=sys.stderr)
        search = run_job(client, project_id, body)
        metrics = search["model"]["metrics"]
        candidates, selection = metrics["candidates"], metrics["selection"]
        rows = []
        for candidate in candidates:
            row = {**candidate, "holdout_auroc": None, "alone_s": None, "alone_load": None}
            if candidate["status"] == "trained":
                wait_until_worker_idle(stack.workers["training"].pid)
                print(f"alone: {candidate['architecture']} {candidate['parameters'].get('backbone')}...",
                      file=sys.stderr)
                alone = run_job(client, project_id, {
                    "model_name": f"alone {candidate['architecture']}", "architecture": candidate["architecture"],
                    "parameters": candidate["parameters"], "snapshot_id": snapshot_id})
                row.update(holdout_auroc=holdout_auroc(store, alone["model"]["id"], images, labels),
                           alone_s=alone["seconds"], alone_load=alone["load"])
            rows.append(row)

    print(f"\nMTD selection: train {len(parts['train'])} good, eval {len(parts['eval_good'])} good + "
          f"{len(parts['eval_bad'])} defective, hold-out {len(parts['holdout_good'])} good + "
          f"{len(parts['holdout_bad'])} defective\n")
    header = ("#", "candidate", "status", "eval AUROC", "search s", "hold-out AUROC", "alone job s (load)")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for index, row in enumerate(rows):
        backbone = row["parameters"].get("backbone")
        print(" | ".join([str(index + 1), f"{row['architecture']} · {backbone}" if backbone else row["architecture"],
                          row["status"], _fmt(row["image_auroc"], 4), _fmt(row["seconds"], 1),
                          _fmt(row["holdout_auroc"], 4),
                          f"{_fmt(row['alone_s'], 1)} ({row['alone_load']})" if row["alone_s"] else "-"]))
    trained = [row for row in rows if row["holdout_auroc"] is not None]
    chosen = rows[selection["chosen_index"]]
    best = max(trained, key=lambda row: row["holdout_auroc"])
    gap = best["holdout_auroc"] - chosen["holdout_auroc"]
    print(f"\nchoice: {selection['chosen']} — {selection['reason']}")
    print(f"best in hindsight (hold-out): {best['architecture']} · {best['parameters'].get('backbone')} "
          f"{best['holdout_auroc']:.4f}; chosen {chosen['holdout_auroc']:.4f}; gap {gap:.4f} "
          f"-> {'within' if gap <= BOUND else 'NOT within'} {BOUND}")
    print(f"search (whole auto job): {search['seconds']:.1f} s (load {search['load']}); the best candidate alone: "
          f"{best['alone_s']:.1f} s (load {best['alone_load']}); ratio {search['seconds'] / best['alone_s']:.1f}x; "
          f"load now {load()}")


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
