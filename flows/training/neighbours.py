"""Exact nearest-neighbour distances to PatchCore's memory bank, without anomalib's full-matrix passes.

anomalib's ``PatchcoreModel.nearest_neighbors`` builds the (patches x bank) distance matrix and then
walks it five more times (scale, two adds, clamp, square root) before taking the minimum: on a CPU
those memory-bound passes cost more than the matrix product itself. Here one fused ``addmm`` gives
``|m|^2 - 2 x.m`` per tile of the bank, the running minimum is kept per patch, and ``|x|^2``, the
clamp and the square root are applied to one value per patch. Same expansion of the distance, so
the results agree with anomalib's to float rounding (an index may differ only between equidistant
bank entries). Used for the test pass; the exported graph keeps anomalib's own search.
"""

from __future__ import annotations

import torch

QUERY_ROWS = 1024  # patches per step: one 256x256 image at stride 8
BANK_COLUMNS = 8192  # bank entries per tile: the tile (32 MiB) stays in cache while it is reduced


def squared_norms(bank: torch.Tensor) -> torch.Tensor:
    return bank.pow(2).sum(dim=-1)


def nearest(
    queries: torch.Tensor,
    bank: torch.Tensor,
    bank_norms: torch.Tensor | None = None,
    query_rows: int = QUERY_ROWS,
    bank_columns: int = BANK_COLUMNS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, bank index) of every query row's nearest bank row."""
    if bank.shape[0] == 0:
        raise ValueError("the memory bank is empty")
    bank_norms = squared_norms(bank) if bank_norms is None else bank_norms
    n = queries.shape[0]
    best = torch.empty(n, dtype=queries.dtype)
    where = torch.empty(n, dtype=torch.long)
    for row in range(0, n, query_rows):
        x = queries[row : row + query_rows]
        low = torch.full((x.shape[0],), float("inf"), dtype=queries.dtype)
        at = torch.zeros(x.shape[0], dtype=torch.long)
        for column in range(0, bank.shape[0], bank_columns):
            tile = bank[column : column + bank_columns]
            partial = torch.addmm(bank_norms[column : column + bank_columns], x, tile.T, alpha=-2.0)
            value, index = partial.min(dim=1)
            better = value < low  # strict: the first of equal minima wins, as in torch.min
            low = torch.where(better, value, low)
            at = torch.where(better, index + column, at)
        best[row : row + x.shape[0]] = (low + squared_norms(x)).clamp_min_(0).sqrt_()
        where[row : row + x.shape[0]] = at
    return best, where
