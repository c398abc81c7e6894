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

    ``repeats``: how many times each item is drawn per epoch (a split file that oversamples images by listing
    them several times; None: once each). An epoch is then a permutation of the items, each repeated that many
    times, as if the repeated list itself were shuffled; every draw gets its own view and augmentation seed.
    ``rank``/``world``: DDP sharding. With ``pad`` (training) shards are padded by wrapping around so every
    rank gets the same number of items (DDP's gradient all-reduce needs equal step counts). Without it
    (validation, whose steps hold no collective call) each item is drawn once over all ranks, so validation
    PQ and loss are not weighted towards the repeated items; only with fewer items than ranks are some drawn
    twice, so that every rank has a step.
    """

    def __init__(self, n: int, seed: int, *, shuffle: bool = True, views: int = 1, rank: int = 0, world: int = 1,
                 repeats: np.ndarray | None = None, pad: bool = True) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world size {world}")
        if repeats is not None:
            repeats = np.asarray(repeats, dtype=np.int64)
            if repeats.shape != (n,) or (repeats < 1).any():
                raise ValueError(f"repeats must hold one count >= 1 per item ({n}), got shape {repeats.shape}")
        self.n, self.seed, self.shuffle, self.views = n, seed, shuffle, views
        self.repeats = repeats
        self.rank, self.world, self.pad = rank, world, pad
        self.epoch = 0

    @property
    def draws_per_epoch(self) -> int:
        """Draws of one epoch, all ranks (``n`` without repeats)."""
        return self.n if self.repeats is None else int(self.repeats.sum())

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at the start of every epoch (also after a resume)."""
        self.epoch = epoch

    def draws(self) -> list[Draw]:
        """Every draw of the current epoch, all ranks: a pure function of (seed, epoch, n, repeats)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        items = np.arange(self.n) if self.repeats is None else np.repeat(np.arange(self.n), self.repeats)
        total = len(items)
        order = rng.permutation(items) if self.shuffle else items
        views = rng.integers(0, self.views, total) if self.views > 1 else np.zeros(total, dtype=np.int64)
        seeds = rng.integers(0, 2**31 - 1, total)
        return [Draw(int(i), int(v), int(s)) for i, v, s in zip(order, views, seeds, strict=True)]

    def _padded_total(self) -> int:
        """Draws of one epoch over all ranks, once padded: a multiple of ``world`` with ``pad``, else the draws
        themselves, or ``world`` when there are fewer."""
        if self.pad:
            return math.ceil(self.draws_per_epoch / self.world) * self.world
        return max(self.draws_per_epoch, self.world)

    def __len__(self) -> int:
        return len(range(self.rank, self._padded_total(), self.world))

    def __iter__(self) -> Iterator[Draw]:
        draws = self.draws()
        if self.world > 1:
            total = self._padded_total()
            draws = (draws * math.ceil(total / max(len(draws), 1)))[:total]
            draws = draws[self.rank::self.world]
        return iter(draws)
