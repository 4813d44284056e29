"""Check a backbone weights file someone brings in and turn it into timm's safetensors.

The API runs this as a subprocess (``python -m infra.anomaly.weights_check``), so neither torch's
unpickler nor hundreds of megabytes of tensors ever enter the API process; the CLI runs the same
command. Accepted:

- ``.safetensors``: read with ``safetensors`` (a plain tensor container: nothing to execute);
- ``.pth`` / ``.pt`` / ``.bin``: ``torch.load(weights_only=True)``, which unpickles tensors and plain
  containers only and refuses any pickle that would import or call code.

The state dict may be wrapped (``{"state_dict": ...}``, ``{"model": ...}``) and prefixed
(``module.``). It must fit the timm backbone: the same keys and shapes (timm's layout), or the same
tensors in the same order under other names (torchvision's layout, say), which are then renamed as
for the shipped weights (``backbones.remap_state_dict``). Every value must be finite. The output is
a safetensors file with timm's keys; the report names its SHA-256 and the source file's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_WRAPPERS = ("state_dict", "model", "model_state_dict", "module")
_PREFIXES = ("module.", "model.", "backbone.")


class WeightsRefused(ValueError):
    """The file is not a usable set of weights for the backbone (the message says why)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state(path: Path) -> dict[str, Any]:
    """The tensors in the file, unwrapped and unprefixed; never runs code from the file."""
    import torch

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise WeightsRefused(f"unsupported file type {suffix or '(none)'!r}; expected one of {', '.join(SUFFIXES)}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch/safetensors raise many kinds for a bad or unsafe file
        raise WeightsRefused(f"cannot read {path.name} as {suffix} weights: {str(error).splitlines()[0][:300]}") \
            from error
    while isinstance(state, Mapping) and not _is_state_dict(state):
        inner = next((state[key] for key in _WRAPPERS if key in state and isinstance(state[key], Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not _is_state_dict(state):
        raise WeightsRefused(f"{path.name} holds no state dict of tensors")
    for prefix in _PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return dict(state)


def _is_state_dict(value: Mapping) -> bool:
    import torch

    return bool(value) and all(isinstance(key, str) and isinstance(tensor, torch.Tensor)
                               for key, tensor in value.items())


def fit_to_timm(state: Mapping[str, Any], backbone: str) -> tuple[dict[str, Any], str]:
    """The tensors under timm's keys for ``backbone`` and the layout they came in (``timm`` or ``renamed``)."""
    import timm
    import torch

    from infra.anomaly.backbones import WeightsRemapError, remap_state_dict, without_counters

    if not timm.is_model(backbone):
        raise WeightsRefused(f"timm has no backbone called {backbone!r}")
    with torch.device("meta"):
        target = timm.create_model(backbone, pretrained=False).state_dict()
    source = dict(without_counters(state))
    expected = dict(without_counters(target))
    if set(source) == set(expected):
        wrong = [f"{key} {tuple(source[key].shape)} (expected {tuple(expected[key].shape)})"
                 for key in expected if tuple(source[key].shape) != tuple(expected[key].shape)]
        if wrong:
            raise WeightsRefused(f"shapes do not match timm's {backbone}: {', '.join(wrong[:5])}")
        fitted, layout = {key: source[key] for key in expected}, "timm"
    else:
        try:
            fitted, layout = remap_state_dict(source, target), "renamed"
        except WeightsRemapError as error:
            missing = sorted(set(expected) - set(source))[:5]
            raise WeightsRefused(f"these weights do not fit timm's {backbone}: {error}; keys timm expects and the "
                                 f"file lacks include {', '.join(missing) or '-'}") from error
    fitted = {key: value.detach().to(torch.float32).contiguous() if value.is_floating_point() else value.contiguous()
              for key, value in fitted.items()}
    bad = [key for key, value in fitted.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise WeightsRefused(f"the weights hold NaN or infinite values ({', '.join(bad[:5])})")
    return fitted, layout


def check_weights(source: Path, backbone: str, output: Path) -> dict[str, Any]:
    """Check ``source`` against ``backbone``, write timm's safetensors to ``output``; returns the report."""
    from safetensors.torch import save

    source_sha = sha256_file(source)
    fitted, layout = fit_to_timm(load_state(source), backbone)
    data = save(fitted, metadata={"format": "pt", "origin": f"imported {Path(source).name} (sha256 {source_sha})"})
    Path(output).write_bytes(data)
    return {"backbone": backbone, "format": Path(source).suffix.lower().lstrip("."), "layout": layout,
            "tensors": len(fitted), "parameters": int(sum(value.numel() for value in fitted.values())),
            "source_sha256": source_sha, "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}


def main(argv: list[str] | None = None) -> int:
    """Prints the report as JSON; exit status 2 with ``{"error": ...}`` when the file is refused."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        report = check_weights(args.input, args.backbone, args.output)
    except WeightsRefused as error:
        print(json.dumps({"error": str(error)}))
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
