"""CPU time of the OpenVINO IR export that ends every training: the traced route against the ONNX route.

Trains and evaluates one model (MTD tiles from ../shared/data/mtd when present, else synthetic parts) and exports
it as training does, which also warms both converters' imports, then exports it alternately by

  `onnx`    torch.export, ONNX, then OpenVINO's ONNX conversion (anomalib's `to_openvino`; the baseline);
  `traced`  OpenVINO's conversion of a TorchScript trace, with its check on two image sizes
            (`flows.training.export.traced_ir`), which training now tries first.

Prints the median CPU seconds (user + system, this process) per export of each way, their ratio, the largest
difference between the two IRs' scores on held-out tiles at the training size and at a raw size, and the
machine's 1-minute load.

    .venv/bin/python benchmarks/ir_export.py --rounds 3 --architecture padim
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.support import load, materialise_mtd_slice  # noqa: E402

MTD = REPO_ROOT.parent / "shared" / "data" / "mtd"
PARAMETERS = {"padim": {"backbone": "mobilenetv2_100", "layers": ["blocks.2", "blocks.4"], "n_features": 32},
              "patchcore": {"backbone": "mobilenetv2_100", "coreset_max_size": 300},
              "stfpm": {"backbone": "mobilenetv2_100", "max_epochs": 1}}
SIZES = ((256, 256), (180, 300))


def _images(root: Path) -> Path:
    """The MTD folder, or synthetic parts in its layout when the real tiles are not here."""
    if (MTD / "MT_Free" / "Imgs").is_dir():
        return MTD
    from tests.synthetic_parts import write_parts

    return write_parts(root / "parts")


def _ways(model: Any) -> dict[str, Callable[[Path], Path]]:
    from flows.training.export import onnx_route_ir, traced_ir

    def onnx(folder: Path) -> Path:
        return onnx_route_ir(model, folder, SIZES[0])

    def traced(folder: Path) -> Path:
        xml = traced_ir(model, folder, SIZES[0])
        if xml is None:
            raise SystemExit("the traced IR did not pass its check for this model: training uses the ONNX route")
        return xml

    return {"onnx": onnx, "traced": traced}


def _scores(xml: Path, tiles: list[Path]) -> list[float]:
    from flows.training.export import load_image, verify_openvino

    return [verify_openvino(xml, load_image(path, size)) for path in tiles for size in SIZES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="exports per way (default 3)")
    parser.add_argument("--architecture", choices=sorted(PARAMETERS), default="padim")
    args = parser.parse_args()

    from flows.training.trainer import TrainingSteps

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        dataset = materialise_mtd_slice(_images(root), root / "dataset", normal=24, defects=3)
        steps = TrainingSteps(dataset, args.architecture, PARAMETERS[args.architecture], root / "work",
                              data_dir=root / "data")
        steps.fit()
        steps.evaluate()
        steps.export_ir()
        model = steps.model.eval()
        ways = _ways(model)
        for name, way in ways.items():  # each converter's own imports and first-use caches, measured by neither
            way(root / f"warm-{name}")
        samples: dict[str, list[float]] = {name: [] for name in ways}
        produced: dict[str, Path] = {}
        for index in range(args.rounds):
            for name, way in ways.items():
                started = time.process_time()
                produced[name] = way(root / f"{name}-{index}")
                samples[name].append(time.process_time() - started)
        tiles = sorted(dataset.rglob("*.jpg"))[:6]
        scores = {name: _scores(xml, tiles) for name, xml in produced.items()}
    baseline = statistics.median(samples["onnx"])
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:7s} median {median:.2f} CPU-s per {args.architecture} IR export over {len(values)} exports "
              f"({median / baseline:.2f}x the onnx baseline)")
    gap = max(abs(a - b) for a, b in zip(scores["onnx"], scores["traced"], strict=True))
    print(f"largest score difference between the two IRs: {gap:.2e} "
          f"({len(tiles)} tiles at {' and '.join(f'{h}x{w}' for h, w in SIZES)})")
    print(f"load (1 min): {load()}")


if __name__ == "__main__":
    main()
