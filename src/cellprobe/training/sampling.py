"""Which patch, in which dihedral view, with which augmentation seed, at every step of every epoch.

All randomness of the data pipeline is drawn here from ``(seed, epoch)``, not from global RNG state: an
interrupted run resumed at epoch e sees exactly the batches the uninterrupted run saw, whatever the number of
data-loader workers, and DDP ranks get disjoint shards of the same permutation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from torch.utils.data import Sampler


class Draw(NamedTuple):
    """One item: position in the dataset, dihedral view (0..7), seed of its augmentation."""

    index: int
    view: int
    seed: int


class EpochSampler(Sampler[Draw]):
    """Shuffled (or in-order) draws of ``n`` items; ``views`` dihedral views to draw from (1: identity only).

    ``rank``/``world``: DDP sharding; shards are padded by wrapping around so every rank gets the same
    number of items (DDP needs equal step counts).
    """

    def __init__(self, n: int, seed: int, *, shuffle: bool = True, views: int = 1, rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world size {world}")
        self.n, self.seed, self.shuffle, self.views = n, seed, shuffle, views
        self.rank, self.world = rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at the start of every epoch (also after a resume)."""
        self.epoch = epoch

    def draws(self) -> list[Draw]:
        """Every draw of the current epoch, all ranks."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        views = rng.integers(0, self.views, self.n) if self.views > 1 else np.zeros(self.n, dtype=np.int64)
        seeds = rng.integers(0, 2**31 - 1, self.n)
        return [Draw(int(i), int(v), int(s)) for i, v, s in zip(order, views, seeds, strict=True)]

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self) -> Iterator[Draw]:
        draws = self.draws()
        if self.world > 1:
            total = len(self) * self.world
            draws = (draws * math.ceil(total / max(len(draws), 1)))[:total]
            draws = draws[self.rank::self.world]
        return iter(draws)
