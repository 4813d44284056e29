"""PatchCore's fit and test pass at scale: what :func:`fast_patchcore` changes, for one model, in one block.

- **Coreset.** Up to ``exact_limit`` patches the selection is anomalib's exact k-center greedy
  (:class:`FastKCenterGreedy`: same indices, a fraction of the time). Above it, exact greedy grows with
  the square of the training set, so :class:`ChunkedKCenterGreedy` selects the same number of patches
  greedily within chunks of ``chunk_points`` (linear growth; its AUROC against anomalib's is printed
  by ``benchmarks/patchcore_scale.py``).
- **Capped memory bank.** Every live frame searches the whole bank, so a model fitted on 1,000 tiles
  (78k patches at anomalib's 10 %) scores several times slower than one fitted on 60. ``max_size``
  (the parameter ``coreset_max_size``, default ``PATCHCORE_MAX_BANK``) caps the coreset during the fit, so
  validation, test and the exported graph all use the very bank that ships.
- **Nearest neighbours** in validation and test: :func:`neighbours.nearest` (exact, fused, tiled).
- **Channels-last backbone, batch norms folded.** oneDNN's depthwise and 1x1 convolutions (MobileNet,
  EfficientNet) run about 1.7x faster on channels-last weights, and a copy of the frozen backbone with each
  batch norm folded into its convolution (:mod:`batchnorm_folding`) skips one pass over every feature map;
  features differ from anomalib's by float rounding.
- **One scoring pass.** The platform validates on its evaluation set (anomalib takes thresholds and
  normalisation from it) and then tests on the same images: the model outputs of the validation pass
  are kept, keyed by the exact bytes of the input batch, and the test pass reuses them (it still runs
  anomalib's post-processing and metrics). Any batch not seen before is computed as usual.

Only this instance changes, only inside the block: afterwards the class methods are back and the model
pickles and exports exactly as anomalib's (the exported graph uses anomalib's own search).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from flows.training import neighbours
from flows.training.batchnorm_folding import folded_copy
from flows.training.coreset import ChunkedKCenterGreedy, FastKCenterGreedy
from infra.anomaly.offerings import PATCHCORE_MAX_BANK

# Exact selection costs (patches x coreset size); 48 tiles (49k patches at 256x256, stride 8) take
# seconds, 160 tiles half a minute or more on 2 cores.
EXACT_LIMIT = 65_536
CHUNK_POINTS = 16_384


def coreset_sampler(
    embedding: torch.Tensor,
    sampling_ratio: float,
    progress: Callable[[int, int], None] | None = None,
    exact_limit: int = EXACT_LIMIT,
    chunk_points: int = CHUNK_POINTS,
    max_size: int | None = None,
) -> FastKCenterGreedy | ChunkedKCenterGreedy:
    """Exact (anomalib's indices) up to ``exact_limit`` patches, chunked above; at most ``max_size`` rows."""
    if embedding.shape[0] <= exact_limit or embedding.ndim != 2:
        return FastKCenterGreedy(embedding, sampling_ratio, progress=progress, max_size=max_size)
    return ChunkedKCenterGreedy(embedding, sampling_ratio, chunk_points=chunk_points, progress=progress,
                                max_size=max_size)


def _batch_key(tensor: torch.Tensor) -> tuple[Any, ...]:
    data = tensor.detach().contiguous().cpu()
    return tuple(data.shape), str(data.dtype), hashlib.blake2b(data.numpy().tobytes(), digest_size=16).digest()


def _copy(output: Any) -> Any:
    return type(output)(*(value.clone() if isinstance(value, torch.Tensor) else value for value in output))


@contextmanager
def fast_patchcore(
    patchcore: Any,
    progress: Callable[[int, int], None] | None = None,
    exact_limit: int = EXACT_LIMIT,
    chunk_points: int = CHUNK_POINTS,
    max_size: int | None = PATCHCORE_MAX_BANK,
) -> Iterator[dict[str, float]]:
    """Within the block, ``patchcore`` (anomalib's Lightning ``Patchcore``) fits and scores faster, and keeps
    at most ``max_size`` patches (None: anomalib's coreset size).

    Yields counters (``coreset_points``, ``coreset_size``, ``coreset_uncapped``: anomalib's size,
    ``chunked``, ``folded``, ``scored``, ``reused``) and where
    the time went (``coreset_s``: the selection; ``scoring_s``: the evaluation forward passes, i.e.
    backbone + nearest-neighbour search of the validation images) for the job's report.
    """
    model = patchcore.model
    cls = type(model)
    stats: dict[str, float] = {"coreset_points": 0, "coreset_size": 0, "coreset_uncapped": 0, "chunked": 0,
                               "scored": 0, "reused": 0,
                               "coreset_s": 0.0, "scoring_s": 0.0}
    outputs: dict[tuple[Any, ...], Any] = {}
    bank_norms: dict[str, torch.Tensor] = {}

    def subsample_embedding(sampling_ratio: float, embeddings: torch.Tensor | None = None) -> None:
        del embeddings  # deprecated in anomalib; the embedding store is the source
        if len(model.embedding_store) == 0:
            raise ValueError("Embedding store is empty. Cannot perform coreset selection.")
        model.memory_bank = torch.vstack(model.embedding_store)
        model.embedding_store.clear()
        points = int(model.memory_bank.shape[0])
        sampler = coreset_sampler(model.memory_bank, sampling_ratio, progress, exact_limit, chunk_points, max_size)
        stats.update(coreset_points=points, coreset_size=sampler.coreset_size,
                     coreset_uncapped=int(points * sampling_ratio),
                     chunked=int(isinstance(sampler, ChunkedKCenterGreedy)))
        started = time.perf_counter()
        model.memory_bank = sampler.sample_coreset()
        stats["coreset_s"] = round(time.perf_counter() - started, 3)
        outputs.clear()
        bank_norms.clear()

    def nearest_neighbors(embedding: torch.Tensor, n_neighbors: int) -> tuple[torch.Tensor, torch.Tensor]:
        if n_neighbors != 1:  # the 9-neighbour re-weighting of one patch per image: small
            return cls.nearest_neighbors(model, embedding, n_neighbors)
        if "bank" not in bank_norms:
            bank_norms["bank"] = neighbours.squared_norms(model.memory_bank)
        return neighbours.nearest(embedding, model.memory_bank, bank_norms["bank"])

    def forward(input_tensor: torch.Tensor) -> Any:
        if model.training:
            return cls.forward(model, input_tensor)
        key = _batch_key(input_tensor)
        if key in outputs:
            stats["reused"] += int(input_tensor.shape[0])
        else:
            started = time.perf_counter()
            outputs[key] = cls.forward(model, input_tensor)
            stats["scoring_s"] = round(stats["scoring_s"] + time.perf_counter() - started, 3)
            stats["scored"] += int(input_tensor.shape[0])
        return _copy(outputs[key])  # post-processing must never reach the kept tensors

    original_extractor = model.feature_extractor
    folded = folded_copy(original_extractor)
    stats["folded"] = int(folded is not None)
    model.subsample_embedding = subsample_embedding
    model.nearest_neighbors = nearest_neighbors
    model.forward = forward
    model.feature_extractor = (folded or original_extractor).to(memory_format=torch.channels_last)
    try:
        yield stats
    finally:
        for name in ("subsample_embedding", "nearest_neighbors", "forward"):
            vars(model).pop(name, None)
        model.feature_extractor = original_extractor.to(memory_format=torch.contiguous_format)
