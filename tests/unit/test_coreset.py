"""The fast k-center-greedy selects exactly what anomalib's KCenterGreedy selects."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from anomalib.models import Patchcore
from anomalib.models.components.sampling import KCenterGreedy

from flows.training.coreset import FastKCenterGreedy, fast_coreset


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


def test_fast_coreset_swaps_patchcore_subsampling_only_inside_the_block() -> None:
    model = Patchcore(backbone="resnet18", pre_trained=False, coreset_sampling_ratio=0.1)
    embedding = _clustered(1000, 32, seed=4)
    _seed(5)
    expected = KCenterGreedy(embedding, 0.1).sample_coreset()
    model.model.embedding_store = [embedding[:400], embedding[400:]]
    with fast_coreset(model):
        _seed(5)
        model.model.subsample_embedding(0.1)
    assert torch.equal(model.model.memory_bank, expected)
    assert "subsample_embedding" not in vars(model.model)  # the class method is back
    pickle.dumps(model.model)  # and the model still pickles (anomalib's torch export does)
