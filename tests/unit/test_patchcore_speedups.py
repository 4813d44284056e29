"""fast_patchcore: exact search, one scoring pass, the right coreset, and anomalib's model again afterwards."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from anomalib.models import Patchcore
from anomalib.models.components.sampling import KCenterGreedy

from flows.training import neighbours
from flows.training.patchcore import fast_patchcore


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@pytest.fixture
def patchcore() -> Patchcore:
    return Patchcore(backbone="resnet18", layers=["layer2"], pre_trained=False, coreset_sampling_ratio=0.1)


# (query rows, bank columns) per step, and the problem's (bank, random queries) sizes: single-row and
# single-column steps run on a smaller problem, as one Python step per (row, column) pair costs ~60 us.
@pytest.mark.parametrize(("rows", "columns", "bank_size", "query_size"),
                         [(1024, 8192, 700, 300), (7, 5, 700, 300), (1, 1, 67, 31), (64, 10_000, 700, 300)])
def test_nearest_matches_brute_force(rows: int, columns: int, bank_size: int, query_size: int) -> None:
    generator = torch.Generator().manual_seed(3)
    bank = torch.randn(bank_size, 24, generator=generator)
    queries = torch.cat([torch.randn(query_size, 24, generator=generator), bank[:20]])  # some exact hits: distance 0
    distance, index = neighbours.nearest(queries, bank, query_rows=rows, bank_columns=columns)
    expected = torch.cdist(queries.double(), bank.double())
    # |x|^2 - 2 x.m + |m|^2 in float32 (anomalib's expansion too) cancels to ~1e-6 near 0: its root to ~2e-3.
    assert torch.allclose(distance.double(), expected.min(dim=1).values, atol=5e-3)
    assert torch.equal(index, expected.argmin(dim=1))
    assert torch.equal(index[-20:], torch.arange(20))


def test_nearest_takes_the_first_of_equal_neighbours() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    _, index = neighbours.nearest(torch.tensor([[2.0, 0.0], [0.0, 3.0]]), bank, bank_columns=1)
    assert index.tolist() == [0, 1]
    with pytest.raises(ValueError, match="empty"):
        neighbours.nearest(torch.zeros(1, 2), torch.zeros(0, 2))


def test_exact_coreset_below_the_limit_chunked_above(patchcore: Patchcore) -> None:
    generator = torch.Generator().manual_seed(4)
    embedding = torch.randn(1000, 32, generator=generator)
    _seed(5)
    expected = KCenterGreedy(embedding, 0.1).sample_coreset()
    patchcore.model.embedding_store = [embedding[:400], embedding[400:]]
    with fast_patchcore(patchcore, exact_limit=1000) as stats:
        _seed(5)
        patchcore.model.subsample_embedding(0.1)
    assert torch.equal(patchcore.model.memory_bank, expected)
    assert stats["chunked"] == 0 and stats["coreset_points"] == 1000 and stats["coreset_size"] == 100
    patchcore.model.embedding_store = [embedding]
    with fast_patchcore(patchcore, exact_limit=999, chunk_points=300) as stats:
        patchcore.model.subsample_embedding(0.1)
    assert stats["chunked"] == 1 and patchcore.model.memory_bank.shape == (100, 32)


def test_the_memory_bank_is_capped_in_both_selections(patchcore: Patchcore) -> None:
    generator = torch.Generator().manual_seed(8)
    embedding = torch.randn(1000, 32, generator=generator)
    _seed(9)
    expected = KCenterGreedy(embedding, 0.1).sample_coreset()
    for exact_limit, chunked in ((1000, 0), (999, 1)):
        patchcore.model.embedding_store = [embedding]
        with fast_patchcore(patchcore, exact_limit=exact_limit, chunk_points=300, max_size=40) as stats:
            _seed(9)
            patchcore.model.subsample_embedding(0.1)
        assert patchcore.model.memory_bank.shape == (40, 32)
        assert (stats["chunked"], stats["coreset_size"], stats["coreset_uncapped"]) == (chunked, 40, 100)
        if not chunked:  # exact: the first 40 patches anomalib's selection would keep
            assert torch.equal(patchcore.model.memory_bank, expected[:40])
    patchcore.model.embedding_store = [embedding]
    with fast_patchcore(patchcore, exact_limit=1000, max_size=None):
        _seed(9)
        patchcore.model.subsample_embedding(0.1)
    assert torch.equal(patchcore.model.memory_bank, expected)  # None: anomalib's size


def test_scores_as_anomalib_and_reuses_a_pass_over_the_same_images(patchcore: Patchcore) -> None:
    model = patchcore.model.eval()
    _seed(6)
    images = torch.rand(2, 3, 64, 64)
    model.memory_bank = torch.randn(300, 128)  # resnet18 layer2: 128 channels
    with torch.no_grad():
        plain = model(images)
        with fast_patchcore(patchcore) as stats:
            first = model(images)
            first.pred_score.add_(100)  # what a caller does to its copy never reaches the kept output
            again = model(images)
            other = model(images.flip(-1))
    assert torch.allclose(again.pred_score, plain.pred_score, atol=1e-5)
    assert torch.allclose(again.anomaly_map, plain.anomaly_map, atol=1e-4)
    assert stats["scored"] == 4 and stats["reused"] == 2
    assert not torch.allclose(other.pred_score, plain.pred_score)
    assert not {"forward", "nearest_neighbors", "subsample_embedding"} & set(vars(model))  # class methods back
    assert all(weight.is_contiguous() for weight in model.feature_extractor.parameters())
    pickle.dumps(model)  # and the model still pickles (anomalib's torch export does)
