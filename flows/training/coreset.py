"""k-center-greedy coreset selection for PatchCore: anomalib's exact selection, without its cost.

anomalib's ``KCenterGreedy`` recomputes ``|f - c|`` for every patch after each of its thousands
of selections, allocating a fresh N x d temporary every time (with glibc each one is mmap'ed and
unmapped: page faults make PatchCore's fit take minutes). The selection only ever needs the
*farthest* point, so here the minimum distances are kept per block of points and a block is
brought up to date only when it might hold the farthest point (its last known maximum is the
largest; distances only shrink, so a stale maximum is an upper bound). Updating a block against
all centres it has not seen is one small matrix product that screens which (point, centre) pairs
can lower a distance, with a rigorous floating-point margin; those pairs get the exact distance,
computed with the very expression anomalib uses. Distances, the argmax and its tie-breaking
(first index) are therefore bit-identical to anomalib's, and so are the selected indices: same
random projection, same random start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import torch
from anomalib.models.components.dimensionality_reduction import SparseRandomProjection

_FLOAT32_UNIT_ROUNDOFF = 2.0**-24
_PROGRESS_EVERY = 64
BLOCK_ROWS = 512


class _BlockedMinDistances:
    """Each point's distance to its nearest selected centre, refreshed lazily block by block."""

    def __init__(self, features: torch.Tensor, first: torch.Tensor, capacity: int, block_rows: int) -> None:
        self.features = features
        n, dims = features.shape
        self.block_rows = block_rows
        self.norms = features.double().pow(2).sum(dim=1).sqrt().float()
        # |f - c|^2 = |f|^2 + |c|^2 - 2 f.c, computed in float32, is within ~(3 dims + 10) u (|f| + |c|)^2 of
        # the squared distance anomalib computes (dot product in any summation order, the norms, anomalib's
        # own rounding); tol is five times that, so a screened-out pair can never lower a distance.
        self.tol = 16.0 * (dims + 16) * _FLOAT32_UNIT_ROUNDOFF
        self.centers = torch.empty((capacity, dims), dtype=features.dtype)
        self.center_norms = torch.empty(capacity, dtype=features.dtype)
        self.count = 0
        # The first centre updates every point, exactly as anomalib does.
        self.min = torch.linalg.norm(features - features[first].squeeze(), ord=2, dim=1, keepdim=True).view(-1)
        self._add_center(first)
        blocks = (n + block_rows - 1) // block_rows
        self.seen = [self.count] * blocks  # centres each block is up to date with
        self.block_max = torch.empty(blocks, dtype=features.dtype)
        self.block_argmax = [0] * blocks
        for block in range(blocks):
            self._summarise(block)

    def _add_center(self, index: torch.Tensor) -> None:
        self.centers[self.count] = self.features[index]
        self.center_norms[self.count] = self.norms[index]
        self.count += 1

    def _rows(self, block: int) -> slice:
        return slice(block * self.block_rows, min((block + 1) * self.block_rows, self.features.shape[0]))

    def _summarise(self, block: int) -> None:
        rows = self._rows(block)
        value, at = torch.max(self.min[rows], dim=0)  # first index among equal maxima, like anomalib's max
        self.block_max[block] = value
        self.block_argmax[block] = rows.start + int(at)

    def _refresh(self, block: int) -> None:
        rows, start = self._rows(block), self.seen[block]
        points, centers = self.features[rows], self.centers[start : self.count]
        point_norms, center_norms = self.norms[rows].unsqueeze(1), self.center_norms[start : self.count].unsqueeze(0)
        approx = point_norms.square() + center_norms.square() - 2.0 * (points @ centers.T)
        approx -= self.tol * (point_norms + center_norms).square()
        minimum = self.min[rows]
        point, center = torch.nonzero(approx < (minimum.square() * (1.0 + self.tol)).unsqueeze(1), as_tuple=True)
        if point.numel():
            exact = torch.linalg.norm(points[point] - centers[center], ord=2, dim=1)
            minimum.scatter_reduce_(0, point, exact, reduce="amin")
        self.seen[block] = self.count
        self._summarise(block)

    def farthest(self) -> int:
        """The index anomalib's ``torch.max`` over all (fully updated) distances would return."""
        while True:
            # First block among equal maxima: lower blocks hold lower indices, so ties resolve as in anomalib.
            block = int(torch.argmax(self.block_max))
            if self.seen[block] == self.count:
                return self.block_argmax[block]
            self._refresh(block)

    def select(self, index: int) -> None:
        """Make ``index`` a centre (its own distance becomes 0, as anomalib sets it)."""
        self.min[index] = 0.0
        self._summarise(index // self.block_rows)
        self._add_center(torch.tensor(index))


def _greedy(
    features: torch.Tensor,
    first: torch.Tensor,
    size: int,
    block_rows: int,
    progress: Callable[[int, int], None] | None = None,
    offset: int = 0,
    total: int | None = None,
) -> list[int]:
    """k-center greedy from ``first``: ``size`` row indices, in anomalib's order and with its ties.

    ``progress(offset + selected, total or size)`` is called every few dozen selections.
    """
    selected = [int(first)]
    if size == 1:
        return selected
    distances = _BlockedMinDistances(features, first, size, block_rows)
    while len(selected) < size:
        index = distances.farthest()
        selected.append(index)
        if len(selected) < size:
            distances.select(index)
        if progress is not None and len(selected) % _PROGRESS_EVERY == 0:
            progress(offset + len(selected), total or size)
    return selected


def _capped(size: int, max_size: int | None) -> int:
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be a positive integer or None, got {max_size}")
    return size if max_size is None else min(size, max_size)


class FastKCenterGreedy:
    """Drop-in for ``anomalib.models.components.KCenterGreedy`` (same arguments, same results).

    ``max_size`` caps the coreset: greedy selection is incremental, so a capped coreset is the first
    ``max_size`` indices anomalib would select.
    """

    def __init__(
        self,
        embedding: torch.Tensor,
        sampling_ratio: float,
        threads: int | None = 1,
        progress: Callable[[int, int], None] | None = None,
        block_rows: int = BLOCK_ROWS,
        max_size: int | None = None,
    ) -> None:
        self.embedding = embedding
        self.block_rows = block_rows
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
        self.coreset_size = _capped(coreset_size, max_size)
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
        first = torch.randint(high=self.n_observations, size=(1,), device=features.device).squeeze()
        return _greedy(features, first, self.coreset_size, self.block_rows, self.progress)

    def sample_coreset(self) -> torch.Tensor:
        return self.embedding[self.select_coreset_idxs()]


def _jl_dims(n: int, eps: float = 0.9) -> int:
    """The dimension anomalib's random projection maps ``n`` points to (Johnson-Lindenstrauss bound)."""
    return int(4 * math.log(n) / (eps**2 / 2 - eps**3 / 3))


class ChunkedKCenterGreedy:
    """Approximate coreset for large memory banks: exact k-center greedy within chunks of the bank.

    Exact greedy costs (points x coreset size): it grows with the square of the training set (about
    17 minutes in anomalib for 160 tiles). Here the bank is cut into contiguous chunks of at most
    ``chunk_points`` rows (whole images, in training order), each chunk gets its share of the
    coreset size by exact greedy, and the union is the coreset: cost grows linearly with the set. The
    coreset has anomalib's size. Points are compared in the raw embedding space when it has no more
    dimensions than anomalib's random projection would produce (projecting *up* only adds noise), else
    in that projection. Deterministic under a seed (each chunk's start comes from torch's RNG).

    ``max_size`` caps the coreset with a second pass: exact greedy over the union of the chunks'
    selections (whole-bank coverage, which a smaller share per chunk would not give). Its cost is
    (union x max_size), a fraction of the first pass's.
    """

    def __init__(
        self,
        embedding: torch.Tensor,
        sampling_ratio: float,
        chunk_points: int,
        threads: int | None = 1,
        progress: Callable[[int, int], None] | None = None,
        block_rows: int = BLOCK_ROWS,
        max_size: int | None = None,
    ) -> None:
        if embedding.ndim != 2:
            raise ValueError(f"expected a 2-D embedding (points x dims), got shape {tuple(embedding.shape)}")
        n = embedding.shape[0]
        self.first_pass_size = int(n * sampling_ratio)  # anomalib's coreset size, shared among the chunks
        if self.first_pass_size <= 0:
            raise ValueError(
                f"coreset_size must be a positive integer, got {self.first_pass_size}. "
                f"Check sampling_ratio ({sampling_ratio}) and embedding size ({n})."
            )
        self.coreset_size = _capped(self.first_pass_size, max_size)
        self.embedding = embedding
        self.chunk_points = max(int(chunk_points), 1)
        self.threads, self.progress, self.block_rows = threads, progress, block_rows

    def _features(self) -> torch.Tensor:
        n, dims = self.embedding.shape
        if dims <= _jl_dims(n):
            return self.embedding.contiguous()
        projection = SparseRandomProjection(eps=0.9)
        projection.fit(self.embedding)
        return projection.transform(self.embedding).contiguous()

    def _shares(self) -> list[tuple[int, int, int]]:
        """(start, stop, coreset share) per chunk; the shares add up to the coreset size."""
        n = self.embedding.shape[0]
        chunks = max(1, math.ceil(n / self.chunk_points))
        bounds = [round(i * n / chunks) for i in range(chunks + 1)]
        shares, given = [], 0
        for start, stop in pairwise(bounds):
            share = max(1, round(self.first_pass_size * stop / n) - given)
            given += share
            shares.append((start, stop, min(share, stop - start)))
        return shares

    def select_coreset_idxs(self) -> list[int]:
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            features = self._features()
            return self.second_pass(features, self.first_pass(features))
        finally:
            torch.set_num_threads(previous)

    def _total(self) -> int:
        """Selections made in all (for progress): the first pass's, plus the second pass's when it runs."""
        return self.first_pass_size + (self.coreset_size if self.coreset_size < self.first_pass_size else 0)

    def first_pass(self, features: torch.Tensor) -> list[int]:
        """Exact greedy within each chunk: anomalib's coreset size in all."""
        selected: list[int] = []
        for start, stop, share in self._shares():
            first = torch.randint(high=stop - start, size=(1,)).squeeze()
            chunk = _greedy(features[start:stop], first, share, self.block_rows, self.progress,
                            offset=len(selected), total=self._total())
            selected.extend(start + index for index in chunk)
        return selected

    def second_pass(self, features: torch.Tensor, selected: list[int]) -> list[int]:
        """The cap: exact greedy over the first pass's points, down to ``coreset_size`` (a no-op under the cap)."""
        if self.coreset_size >= len(selected):
            return selected
        union = features[selected].contiguous()
        first = torch.randint(high=len(selected), size=(1,)).squeeze()
        kept = _greedy(union, first, self.coreset_size, self.block_rows, self.progress, offset=len(selected),
                       total=self._total())
        return [selected[index] for index in kept]

    def sample_coreset(self) -> torch.Tensor:
        return self.embedding[self.select_coreset_idxs()]
