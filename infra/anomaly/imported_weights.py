"""Backbone weights brought into an air-gapped plant by hand (``geti-inspect weights import``,
``POST /api/backbones/{name}``).

A file is checked in a subprocess (``infra/anomaly/weights_check.py``: format, no code executed,
keys and shapes against the timm backbone, finite values), converted to timm's safetensors and kept
in object storage, the platform's shared truth (workers need not share the API's disk)::

    backbones/<name>/model.safetensors   timm's keys, float32
    backbones/<name>/manifest.json       backbone, SHA-256 of that file and of the source file, layout, ...

The manifest is written last, so a listed backbone always has its file. Every process that builds
models (the API's availability checks, training and export flows) calls :func:`sync_imported`,
which puts the stored files into its own Hugging Face cache (``backbones.write_hub_cache``) where
``timm.create_model(name, pretrained=True)`` finds them offline; an imported file takes precedence
over the shipped or a cached copy of the same backbone.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.anomaly import backbones
from infra.storage import ObjectStore

log = logging.getLogger(__name__)

PREFIX = "backbones/"
CHECK_TIMEOUT_S = 600  # a wide_resnet50_2 file (~270 MB) checks in well under a minute on 2 cores
_NAME = re.compile(r"[a-z0-9][a-z0-9_.]{0,63}")


class ImportRefused(ValueError):
    """The weights cannot be imported (unknown backbone, wrong format or shape); the message says why."""


def weights_key(backbone: str) -> str:
    return f"{PREFIX}{backbone}/model.safetensors"


def manifest_key(backbone: str) -> str:
    return f"{PREFIX}{backbone}/manifest.json"


def offered_backbones() -> dict[str, list[str]]:
    """Every backbone an offered architecture can use -> those architectures (names)."""
    from infra.anomaly.introspection import architectures

    offered: dict[str, list[str]] = {}
    for arch in architectures().values():
        for name in (arch.backbone_spec.options or ()) if arch.backbone_spec is not None else ():
            offered.setdefault(name, []).append(arch.name)
    return dict(sorted(offered.items()))


def check_name(backbone: str) -> None:
    if not _NAME.fullmatch(backbone) or backbone not in offered_backbones():
        known = ", ".join(offered_backbones())
        raise ImportRefused(f"no offered architecture uses a backbone called {backbone!r}; known: {known}")


def run_check(backbone: str, source: Path, output: Path, timeout_s: float = CHECK_TIMEOUT_S) -> dict[str, Any]:
    """The check in a subprocess of its own; the report, or ImportRefused with the reason."""
    try:
        done = subprocess.run([sys.executable, "-m", "infra.anomaly.weights_check", "--backbone", backbone,
                               "--input", str(source), "--output", str(output)],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise ImportRefused(f"checking the weights took longer than {timeout_s:g} s") from error
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        answer = {}
    if done.returncode == 2 and "error" in answer:
        raise ImportRefused(answer["error"])
    if done.returncode != 0 or "sha256" not in answer:
        log.error("weights check failed (exit %s): %s", done.returncode, done.stderr[-2000:])
        raise RuntimeError(f"the weights check failed (exit status {done.returncode})")
    return answer


def import_weights(store: ObjectStore, cache_dir: Path, backbone: str, source: Path, filename: str,
                   work_dir: Path | None = None) -> dict[str, Any]:
    """Check ``source`` (its suffix names the format), keep it in storage and in this process's hub cache;
    returns the manifest. ``filename`` is only recorded; the converted file is written under ``work_dir``."""
    check_name(backbone)
    with tempfile.TemporaryDirectory(prefix="weights-", dir=work_dir) as tmp:
        converted = Path(tmp) / "model.safetensors"
        report = run_check(backbone, Path(source), converted)
        manifest = {**report, "filename": Path(filename).name[:255],
                    "imported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        store.put_file(weights_key(backbone), converted)
        store.put(manifest_key(backbone), json.dumps(manifest).encode())
    sync_imported(store, cache_dir)
    log.info("imported %s weights (%s tensors, sha256 %s)", backbone, report["tensors"], report["sha256"])
    return manifest


def imported(store: ObjectStore) -> dict[str, dict[str, Any]]:
    """The manifests of the imported backbones, by name."""
    found = {}
    for key in store.list(PREFIX):
        if key.endswith("/manifest.json"):
            manifest = json.loads(store.get(key))
            found[manifest["backbone"]] = manifest
    return dict(sorted(found.items()))


def _revision(manifest: dict[str, Any]) -> str:
    return manifest["sha256"][:40]


def sync_imported(store: ObjectStore, cache_dir: Path) -> tuple[str, ...]:
    """Put every imported backbone into the hub cache ``cache_dir`` (once per version); returns
    ``name:sha256`` of each, which changes whenever an import does."""
    import hashlib

    fingerprint = []
    for name, manifest in imported(store).items():
        repo_id = backbones.hf_repo_id(name)
        if repo_id is None:
            continue
        target = backbones.hub_cache_file(repo_id, cache_dir, _revision(manifest))
        refs = target.parents[2] / "refs" / "main"
        current = refs.read_text().strip() if refs.is_file() else None
        if not target.is_file() or current != _revision(manifest):
            data = store.get(weights_key(name))
            if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
                log.error("stored weights of %s do not match their manifest's SHA-256: not used", name)
                continue
            backbones.write_hub_cache(name, cache_dir, _revision(manifest), data)
        fingerprint.append(f"{name}:{manifest['sha256']}")
    return tuple(fingerprint)
