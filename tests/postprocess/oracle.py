"""Ground-truth maps as 'predictions' (the oracle), and degraded versions of them; shared by the tests and
benchmarks/bench_targets_postprocess.py."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from cellprobe.data.targets import make_targets


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """(n, H, W) float32 probabilities that are 1 on the given class."""
    return np.eye(n, dtype=np.float32)[labels].transpose(2, 0, 1).copy()


def oracle_maps(inst: np.ndarray, cls: np.ndarray):
    """(semantic probabilities, distance maps, hv maps, type probabilities (5 channels)) from ground truth."""
    t = make_targets(inst, cls)
    return one_hot(t.semantic, 3), t.distance, t.hv, one_hot(t.cls, 5)


def degrade(semantic: np.ndarray, distance: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Soft, noisy maps like a decoder's: blurred, with noise, probabilities renormalised."""
    sem = ndi.gaussian_filter(semantic, (0, 1.0, 1.0)) + rng.normal(0, 0.05, semantic.shape)
    sem = np.clip(sem, 1e-3, None)
    sem /= sem.sum(0, keepdims=True)
    dist = np.clip(ndi.gaussian_filter(distance, (0, 0.7, 0.7)) + rng.normal(0, 0.05, distance.shape), -1, 1)
    return sem.astype(np.float32), dist.astype(np.float32)


def discs(shape=(64, 64), centres=((20, 20), (20, 33), (45, 40)), radius=7) -> np.ndarray:
    """Discs 1..n; the first two overlap, so the later one is cut and they touch along a chord."""
    rows, cols = np.indices(shape)
    inst = np.zeros(shape, np.int32)
    for k, (r, c) in enumerate(centres, start=1):
        inst[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = k
    return inst
