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


def test_a_capped_exact_coreset_is_the_start_of_anomalibs_selection() -> None:
    embedding = _clustered(3000, 40, seed=12)
    _seed(5)
    expected = KCenterGreedy(embedding, 0.1).select_coreset_idxs()
    _seed(5)
    capped = FastKCenterGreedy(embedding, 0.1, max_size=120)
    assert capped.coreset_size == 120
    assert capped.select_coreset_idxs() == expected[:120]  # greedy is incremental: a prefix, same random draws
    _seed(5)
    assert FastKCenterGreedy(embedding, 0.1, max_size=300).select_coreset_idxs() == expected  # at the size: no-op
    with pytest.raises(ValueError, match="max_size"):
        FastKCenterGreedy(embedding, 0.1, max_size=0)


def test_a_capped_chunked_coreset_is_greedy_over_the_chunks_selection() -> None:
    embedding = _clustered(4000, 16, seed=13)
    _seed(6)
    uncapped = ChunkedKCenterGreedy(embedding, 0.1, 1000).select_coreset_idxs()
    seen: list[tuple[int, int]] = []
    _seed(6)
    sampler = ChunkedKCenterGreedy(embedding, 0.1, 1000, max_size=150,
                                   progress=lambda done, total: seen.append((done, total)))
    assert (sampler.first_pass_size, sampler.coreset_size) == (400, 150)
    got = sampler.select_coreset_idxs()
    # The second pass is k-center greedy over the first pass's 400 points: each pick is the farthest of them
    # from the picks before it.
    assert set(got) <= set(uncapped)
    union, picks = embedding[uncapped].double(), embedding[got].double()
    for step in range(1, len(got)):
        farthest = torch.cdist(union, picks[:step]).min(dim=1).values.max()
        assert torch.cdist(picks[step : step + 1], picks[:step]).min() >= farthest * (1 - 1e-5)  # float32 rounding
    assert len(set(got)) == 150
    assert seen and all(total == 400 + 150 for _, total in seen) and seen == sorted(seen) and seen[-1][0] > 400
    # A cap the selection does not reach changes nothing.
    _seed(6)
    assert ChunkedKCenterGreedy(embedding, 0.1, 1000, max_size=400).select_coreset_idxs() == uncapped


def test_a_capped_bank_covers_the_whole_set_better_than_an_equal_share_per_chunk() -> None:
    """Why a second pass rather than a smaller share per chunk: chunks that repeat each other (a long run of
    similar images) would each keep their share; the second pass spends the cap on what is distinct."""
    base, generator = _clustered(1000, 16, seed=14), torch.Generator().manual_seed(14)
    embedding = torch.cat([base + torch.randn(1000, 16, generator=generator) * 0.01 for _ in range(4)])  # near-copies
    _seed(7)
    two_pass = ChunkedKCenterGreedy(embedding, 0.1, 1000, max_size=100).sample_coreset()
    _seed(7)
    per_chunk = ChunkedKCenterGreedy(embedding, 0.025, 1000).sample_coreset()
    assert len(two_pass) == len(per_chunk) == 100

    def radius(bank: torch.Tensor) -> float:  # the k-center objective: farthest point from its nearest centre
        return float(torch.cdist(embedding, bank).min(dim=1).values.max())

    assert radius(two_pass) < radius(per_chunk)
