"""Coreset selection: exact = anomalib's KCenterGreedy indices; chunked = exact greedy within each chunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anomalib.models.components.sampling import KCenterGreedy

from flows.training.coreset import ChunkedKCenterGreedy, FastKCenterGreedy


def _seed(seed: int) -> None:
    # anomalib's random projection draws from torch and (through scikit-learn) from numpy.
    torch.manual_seed(seed)
    np.random.seed(seed)


def _clustered(n: int, dims: int, seed: int) -> torch.Tensor:
    """Patch-like embeddings: a few tight clusters plus spread, so that the screening prunes unevenly."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, dims, generator=generator) * 4
    members = torch.randint(0, 12, (n,), generator=generator)
    return centres[members] + torch.randn(n, dims, generator=generator) * torch.rand(n, 1, generator=generator)


@pytest.mark.parametrize(
    ("embedding", "ratio"),
    [
        (_clustered(4000, 96, seed=1), 0.1),
        (torch.randn(3000, 48), 0.05),  # unstructured: every point stays a candidate for long
        (_clustered(2000, 384, seed=2).abs(), 0.2),  # post-ReLU-like, non-negative
        (_clustered(600, 16, seed=3), 0.5),
    ],
)
def test_same_indices_as_anomalib(embedding: torch.Tensor, ratio: float) -> None:
    _seed(7)
    expected = KCenterGreedy(embedding, ratio).select_coreset_idxs()
    _seed(7)
    got = FastKCenterGreedy(embedding, ratio).select_coreset_idxs()
    assert got == expected
    assert len(set(got)) == len(got) == int(len(embedding) * ratio)


@pytest.mark.parametrize("block_rows", [1, 7, 64, 10_000])
def test_block_size_never_changes_the_selection(block_rows: int) -> None:
    base = _clustered(900, 24, seed=6)
    embedding = torch.cat([base, base[:300], base[:50]])  # duplicates: exact ties, resolved by the first index
    _seed(11)
    expected = KCenterGreedy(embedding, 0.15).select_coreset_idxs()
    _seed(11)
    assert FastKCenterGreedy(embedding, 0.15, block_rows=block_rows).select_coreset_idxs() == expected


def test_same_indices_for_unprojected_embeddings_and_tiny_coresets() -> None:
    embedding = torch.randn(500, 4, 6)  # ndim 3: anomalib skips the projection and flattens
    for ratio in (0.002, 0.01, 0.3):
        _seed(3)
        expected = KCenterGreedy(embedding, ratio).select_coreset_idxs()
        _seed(3)
        assert FastKCenterGreedy(embedding, ratio).select_coreset_idxs() == expected
    with pytest.raises(ValueError, match="coreset_size must be a positive integer"):
        FastKCenterGreedy(torch.randn(10, 3), 0.01)


def test_reports_progress_and_restores_threads() -> None:
    seen: list[tuple[int, int]] = []
    threads = torch.get_num_threads()
    _seed(0)
    sampler = FastKCenterGreedy(torch.randn(2000, 8), 0.1, progress=lambda done, total: seen.append((done, total)))
    sampler.sample_coreset()
    assert seen and seen[0] == (64, 200) and all(done < total for done, total in seen)
    assert torch.get_num_threads() == threads


def _reference_greedy(points: torch.Tensor, first: int, size: int) -> list[int]:
    """Textbook k-center greedy on the raw points (what each chunk must select)."""
    selected, low = [first], torch.linalg.norm(points - points[first], dim=1)
    while len(selected) < size:
        index = int(torch.argmax(low))
        selected.append(index)
        low = torch.minimum(low, torch.linalg.norm(points - points[index], dim=1))
    return selected


@pytest.mark.parametrize(("n", "chunk_points", "ratio"), [(3000, 700, 0.1), (2500, 2500, 0.05), (1001, 250, 0.3)])
def test_chunked_selection_is_exact_greedy_within_each_chunk(n: int, chunk_points: int, ratio: float) -> None:
    embedding = _clustered(n, 16, seed=8)
    sampler = ChunkedKCenterGreedy(embedding, ratio, chunk_points=chunk_points)
    _seed(4)
    got = sampler.select_coreset_idxs()
    assert len(got) == len(set(got)) == int(n * ratio)  # anomalib's coreset size, no duplicates
    _seed(4)
    expected = []
    for start, stop, share in sampler._shares():
        first = int(torch.randint(high=stop - start, size=(1,)).squeeze())
        expected += [start + index for index in _reference_greedy(embedding[start:stop], first, share)]
    assert got == expected
    assert all(stop - start <= chunk_points for start, stop, _ in sampler._shares())


def test_chunked_selection_is_deterministic_and_reports_progress() -> None:
    embedding = _clustered(4000, 24, seed=9)
    seen: list[tuple[int, int]] = []
    _seed(1)
    first = ChunkedKCenterGreedy(embedding, 0.1, 1000, progress=lambda done, total: seen.append((done, total)))
    picked = first.sample_coreset()
    _seed(1)
    assert torch.equal(ChunkedKCenterGreedy(embedding, 0.1, 1000).sample_coreset(), picked)
    assert seen and all(total == 400 for _, total in seen) and seen == sorted(seen)


def test_chunked_selection_projects_only_wide_embeddings() -> None:
    narrow = ChunkedKCenterGreedy(torch.randn(1000, 32), 0.1, 500)
    assert narrow._features().shape == (1000, 32)  # fewer dims than the projection's: compared as they are
    _seed(2)
    wide = ChunkedKCenterGreedy(torch.randn(1000, 1536), 0.1, 500)
    assert wide._features().shape[1] < 1536
    with pytest.raises(ValueError, match="coreset_size must be a positive integer"):
        ChunkedKCenterGreedy(torch.randn(10, 3), 0.01, 5)
