"""Cached mode: the frozen encoder runs once per patch and dihedral view (``cellprobe.encoders.cache``); training
then reads its taps from memory-mapped float16 files instead of running it every epoch."""

from __future__ import annotations

from typing import Any

from cellprobe.data.views import apply_view
from cellprobe.encoders.cache import FeatureCache, extract_features
from cellprobe.run.train_config import TrainConfig
from cellprobe.training.build import TrainData
from cellprobe.training.datasets import CachedSet


class ViewTaps:
    """(dataset position, view) → taps, from one cache per view; picklable for DataLoader workers."""

    def __init__(self, caches: list[FeatureCache]) -> None:
        self.caches = caches

    def __call__(self, position: int, view: int) -> list[Any]:
        return self.caches[view][position]


def _extract(config: TrainConfig, encoder: Any, dataset: Any, views: tuple[int, ...]) -> list[FeatureCache]:
    progress = None
    if config.trainer.progress:
        from rich.console import Console

        console = Console(stderr=True)

        def progress(done: int, total: int) -> None:
            console.print(f"feature cache: {done}/{total} chunks", end="\r" if done < total else "\n")

    return extract_features(encoder, dataset, config.feature_cache_dir(), views=views,
                            batch_size=config.batch_size, progress=progress)


def cached_sets(config: TrainConfig, data: TrainData, encoder: Any) -> tuple[CachedSet, CachedSet | None, int]:
    """Fill (or reuse) the caches, then the training set (all ``cache_views`` views) and the validation set
    (the identity view; None without validation)."""
    views = tuple(range(config.cache_views))
    train_caches = _extract(config, encoder, data.train, views)
    train = CachedSet(data.train, data.train_positions, ViewTaps(train_caches), apply_view, config.targets)
    if data.val is None:
        return train, None, len(views)
    if data.val is data.train:
        val_caches = train_caches
    else:
        val_caches = _extract(config, encoder, data.val, (0,))
    val = CachedSet(data.val, data.val_positions, ViewTaps(val_caches), apply_view, config.targets)
    return train, val, len(views)
