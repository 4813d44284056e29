"""The candidates of an automatic model selection (``"architecture": "auto"``).

The default set covers every architecture that can train on this machine, cheapest first, with
the backbone and layers that did best on real data where they matter: PaDiM and PatchCore on
mobilenetv2_100 at 1/8 and 1/16 scale (``blocks.2`` + ``blocks.4``, facts.md: image AUROC 0.93 and
0.94 on MTD). The order is by measured cost (training time plus inference time on a 2-core CPU,
``benchmarks/model_selection.py``); architectures unlocked later (e.g. by imported backbone
weights) follow with their defaults. Entries whose architecture or backbone cannot train here are
left out, so the set shrinks and grows with what is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.anomaly.catalog import availability, get_architecture, validate_parameters
from infra.anomaly.layers import weights_ready
from infra.anomaly.offerings import ParameterError, architecture_names

AUTO = "auto"
_MOBILE_MID_LAYERS = ["blocks.2", "blocks.4"]


@dataclass(frozen=True)
class Candidate:
    architecture: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        backbone = self.parameters.get("backbone")
        return f"{self.architecture} · {backbone}" if backbone else self.architecture

    def to_json(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "parameters": dict(self.parameters)}


# Cheapest first. One-pass models (a feature pass + statistics) before PatchCore (a coreset
# selection) before the models trained for epochs.
PREFERRED: tuple[Candidate, ...] = (
    Candidate("padim", {"backbone": "mobilenetv2_100", "layers": _MOBILE_MID_LAYERS}),
    Candidate("dfm", {"backbone": "mobilenetv2_100"}),
    Candidate("padim", {"backbone": "tf_efficientnet_lite0", "layers": _MOBILE_MID_LAYERS}),
    Candidate("dfkde", {"backbone": "mobilenetv2_100"}),
    Candidate("patchcore", {"backbone": "mobilenetv2_100", "layers": _MOBILE_MID_LAYERS}),
    Candidate("stfpm", {"backbone": "mobilenetv2_100"}),
    Candidate("supersimplenet", {"backbone": "mobilenetv2_100"}),
    Candidate("cflow", {"backbone": "mobilenetv2_100"}),
)


def trainable_here(candidate: Candidate, cache_dir: Path | None) -> bool:
    """Whether the candidate's architecture and backbone can train on this machine."""
    available, _ = availability(get_architecture(candidate.architecture), cache_dir)
    backbone = candidate.parameters.get("backbone")
    return available and (backbone is None or weights_ready(backbone, cache_dir))


def default_candidates(cache_dir: Path | None) -> list[Candidate]:
    """Every architecture that can train here, cheapest first (see the module docstring)."""
    chosen = [candidate for candidate in PREFERRED if trainable_here(candidate, cache_dir)]
    covered = {candidate.architecture for candidate in PREFERRED}
    chosen += [Candidate(name) for name in architecture_names()
               if name not in covered and trainable_here(Candidate(name), cache_dir)]
    return chosen


def resolve(candidates: Iterable[Candidate], cache_dir: Path | None) -> list[Candidate]:
    """Each candidate with its parameters checked and fully resolved (``ParameterError`` otherwise)."""
    resolved = []
    for candidate in candidates:
        if candidate.architecture == AUTO:
            raise ParameterError("a candidate cannot itself be 'auto'; name an architecture")
        architecture = get_architecture(candidate.architecture).name
        resolved.append(Candidate(architecture, validate_parameters(architecture, candidate.parameters,
                                                                      cache_dir=cache_dir)))
    return resolved



@dataclass(frozen=True)
class SearchSpec:
    """An automatic selection as a model row keeps it (its ``parameters`` while it trains)."""

    candidates: tuple[Candidate, ...]
    time_budget_s: float | None = None
    decision_metric: str = "image_auroc"

    def to_parameters(self) -> dict[str, Any]:
        return {"candidates": [candidate.to_json() for candidate in self.candidates],
                "time_budget_s": self.time_budget_s, "decision_metric": self.decision_metric}

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> SearchSpec:
        candidates = tuple(Candidate(item["architecture"], dict(item.get("parameters") or {}))
                           for item in parameters.get("candidates") or ())
        if not candidates:
            raise ParameterError("an automatic selection needs at least one candidate")
        budget = parameters.get("time_budget_s")
        return cls(candidates, float(budget) if budget is not None else None,
                   parameters.get("decision_metric") or "image_auroc")
