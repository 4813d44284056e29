"""k-center-greedy coreset selection for PatchCore: anomalib's exact selection, without its cost.

anomalib's ``KCenterGreedy`` recomputes ``||f_i - c||`` for every patch on each of its
thousands of iterations, allocating a fresh N x d temporary every time; with glibc that
temporary is mmap'ed and unmapped per iteration, and the page faults make PatchCore's fit take
minutes (see docs). Here each iteration costs one matrix-vector product over preallocated
buffers: ``||f||^2 + ||c||^2 - 2 f.c`` screens which points the new centre can possibly get
closer to (with a rigorous floating-point error bound), and only those few points get the exact
distance, computed with the very expression anomalib uses. The minimum distances therefore stay
bit-identical to anomalib's, and so do the selected indices — same random projection, same
random start, same argmax tie-breaking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from anomalib.models.components.dimensionality_reduction import SparseRandomProjection

_FLOAT32_UNIT_ROUNDOFF = 2.0**-24
_PROGRESS_EVERY = 64


class FastKCenterGreedy:
    """Drop-in for ``anomalib.models.components.KCenterGreedy`` (same arguments, same results)."""

    def __init__(
        self,
        embedding: torch.Tensor,
        sampling_ratio: float,
        threads: int | None = 1,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.embedding = embedding
        self.progress = progress  # called as progress(selected, total) every few dozen selections
        # The loop runs thousands of small vector ops; on a busy 2-core machine every multi-threaded
        # op waits for a descheduled worker thread, so one thread is both faster and steadier there.
        self.threads = threads
        n = embedding.shape[0]
        coreset_size = int(n * sampling_ratio)
        if coreset_size <= 0:
            raise ValueError(
                f"coreset_size must be a positive integer, got {coreset_size}. "
                f"Check sampling_ratio ({sampling_ratio}) and embedding size ({n})."
            )
        self.coreset_size = coreset_size
        self.n_observations = n
        self.model = SparseRandomProjection(eps=0.9)

    def _features(self) -> torch.Tensor:
        # Same projection, fitted the same way, so the global RNG is consumed exactly as anomalib does.
        if self.embedding.ndim == 2:
            self.model.fit(self.embedding)
            return self.model.transform(self.embedding).contiguous()
        return self.embedding.reshape(self.embedding.shape[0], -1).contiguous()

    def select_coreset_idxs(self) -> list[int]:
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return self._select()
        finally:
            torch.set_num_threads(previous)

    def _select(self) -> list[int]:
        features = self._features()
        n, dims = features.shape
        idx = torch.randint(high=self.n_observations, size=(1,), device=features.device).squeeze()
        selected = [int(idx)]
        if self.coreset_size == 1:
            return selected

        # The first centre: every distance, exactly as anomalib computes it.
        min_distances = torch.linalg.norm(features - features[idx].squeeze(), ord=2, dim=1, keepdim=True)
        flat_min = min_distances.view(-1)

        # Screen: |f - c|^2 = |f|^2 + |c|^2 - 2 f.c from one matrix-vector product. Its float32 error
        # (any summation order, a few extra roundings) stays below (dims + 16) * u * (|f| + |c|)^2 and
        # anomalib's own rounding of |f - c| below 2 * (dims + 4) * u relative; ``tol`` covers both
        # four times over, so a point outside the screen can never get a smaller computed distance.
        tol = 4.0 * (dims + 16) * _FLOAT32_UNIT_ROUNDOFF
        norms_sq = features.pow(2).sum(dim=1)
        norms = norms_sq.sqrt()
        # lhs = |f|^2 + |c|^2 - 2 f.c - tol (|f| + |c|)^2, split into per-point constants and per-centre terms.
        lhs_base = norms_sq * (1.0 - tol)
        # MKL's gemv streams a (dims, n) matrix several times faster than the (n, dims) one.
        features_t = features.t().contiguous().t()
        dots = torch.empty(n, dtype=features.dtype, device=features.device)
        lhs = torch.empty_like(dots)
        rhs = torch.empty_like(dots)
        screen = torch.empty(n, dtype=torch.bool, device=features.device)

        for position in range(1, self.coreset_size):
            # anomalib: pick the farthest point, then zero its distance.
            _, idx = torch.max(min_distances.squeeze(1), dim=0)
            flat_min[idx] = 0.0
            selected.append(int(idx))
            if position == self.coreset_size - 1:
                break
            if self.progress is not None and position % _PROGRESS_EVERY == 0:
                self.progress(position, self.coreset_size)
            center = features[idx]
            center_norm = float(norms[idx])
            torch.mv(features_t, center, out=dots)
            torch.add(lhs_base, dots, alpha=-2.0, out=lhs)
            lhs.add_(norms, alpha=-2.0 * tol * center_norm).add_((1.0 - tol) * center_norm**2)
            torch.mul(flat_min, flat_min, out=rhs).mul_(1.0 + tol)
            torch.lt(lhs, rhs, out=screen)
            candidates = torch.nonzero(screen).squeeze(1)
            if candidates.numel():
                exact = torch.linalg.norm(features[candidates] - center, ord=2, dim=1, keepdim=True)
                min_distances[candidates] = torch.minimum(min_distances[candidates], exact)
        return selected

    def sample_coreset(self) -> torch.Tensor:
        return self.embedding[self.select_coreset_idxs()]


@contextmanager
def fast_coreset(patchcore: Any, progress: Callable[[int, int], None] | None = None) -> Iterator[None]:
    """Within the block, this PatchCore model selects its coreset with :class:`FastKCenterGreedy`.

    Only this instance changes, and only for the duration of the block (so the model still pickles
    cleanly for export). The replacement mirrors ``PatchcoreModel.subsample_embedding``.
    """
    torch_model = patchcore.model

    def subsample_embedding(sampling_ratio: float, embeddings: torch.Tensor | None = None) -> None:
        del embeddings  # deprecated in anomalib; the embedding store is the source
        if len(torch_model.embedding_store) == 0:
            raise ValueError("Embedding store is empty. Cannot perform coreset selection.")
        torch_model.memory_bank = torch.vstack(torch_model.embedding_store)
        torch_model.embedding_store.clear()
        sampler = FastKCenterGreedy(torch_model.memory_bank, sampling_ratio, progress=progress)
        torch_model.memory_bank = sampler.sample_coreset()

    torch_model.subsample_embedding = subsample_embedding
    try:
        yield
    finally:
        del torch_model.subsample_embedding
