"""Seeded corruptions of a true (instance map, class map) pair: realistic wrong predictions for the tests.

Each kind changes a fraction of the nuclei: dropped, merged with a touching neighbour, split in two, grown,
shifted, relabelled to another class, spurious nuclei added, part of a nucleus given another class (a class map
that splits an instance), and finally ids permuted and spread out (non-contiguous).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

KINDS = ("drop", "merge", "split", "grow", "shift", "relabel", "spurious", "class_split")


def _ids(inst):
    return np.unique(inst[inst > 0])


def _pick(rng, ids, rate):
    if ids.size == 0:
        return ids
    return rng.choice(ids, size=max(1, round(rate * ids.size)), replace=False)


def corrupt(inst, cls, rng, kind, num_classes, rate=0.2):
    """One corruption ``kind`` applied to a copy of (inst, cls)."""
    inst, cls = inst.astype(np.int64).copy(), cls.astype(np.int64).copy()
    ids = _ids(inst)
    chosen = _pick(rng, ids, rate)
    next_id = int(inst.max()) + 1
    if kind == "drop":
        gone = np.isin(inst, chosen)
        inst[gone], cls[gone] = 0, 0
    elif kind == "merge":
        for i in chosen:
            ring = ndimage.binary_dilation(inst == i, iterations=2) & (inst > 0) & (inst != i)
            if ring.any():
                inst[inst == rng.choice(np.unique(inst[ring]))] = i
    elif kind == "split":
        for i in chosen:
            rows, cols = np.nonzero(inst == i)
            if rows.size < 2:
                continue
            if rng.random() < 0.5:
                part = rows < rows.mean()
            else:
                part = cols < cols.mean()
            inst[rows[part], cols[part]] = next_id
            next_id += 1
    elif kind == "grow":
        for i in chosen:
            mask = inst == i
            c = np.bincount(cls[mask]).argmax()
            grown = ndimage.binary_dilation(mask, iterations=int(rng.integers(1, 4))) & (inst == 0)
            inst[grown], cls[grown] = i, c
    elif kind == "shift":
        for i in chosen:
            mask = inst == i
            c = cls[mask]
            dy, dx = (int(v) for v in rng.integers(-4, 5, size=2))
            rows, cols = np.nonzero(mask)
            inst[mask], cls[mask] = 0, 0
            r, q = rows + dy, cols + dx
            ok = (r >= 0) & (r < inst.shape[0]) & (q >= 0) & (q < inst.shape[1])
            inst[r[ok], q[ok]], cls[r[ok], q[ok]] = i, c[ok]
    elif kind == "relabel":
        for i in chosen:
            mask = inst == i
            cls[mask] = (cls[mask] % num_classes) + 1
    elif kind == "spurious":
        h, w = inst.shape
        yy, xx = np.mgrid[0:h, 0:w]
        for _ in range(max(2, chosen.size)):
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(3, 9)
            disk = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (inst == 0)
            inst[disk], cls[disk] = next_id, int(rng.integers(1, num_classes + 1))
            next_id += 1
    elif kind == "class_split":
        for i in chosen:
            rows, cols = np.nonzero(inst == i)
            part = rows < rows.mean()
            cls[rows[part], cols[part]] = int(rng.integers(0, num_classes + 1))
    else:
        raise ValueError(kind)
    return inst, cls


def scramble_ids(inst, rng):
    """Random permutation of the ids, spread out (non-contiguous, large values)."""
    ids = _ids(inst)
    new = rng.permutation(ids.size) * 7 + 1000
    lut = np.zeros(int(inst.max()) + 1, np.int64)
    lut[ids] = new
    return lut[inst]


def corrupted_stack(labels, seed, num_classes, kinds=KINDS, rate=0.2):
    """(N, H, W, 2) prediction: each image corrupted by every kind in turn (seeded), ids scrambled."""
    rng = np.random.default_rng(seed)
    out = np.zeros(labels.shape, np.int64)
    for k in range(labels.shape[0]):
        inst, cls = labels[k, ..., 0], labels[k, ..., 1]
        for kind in kinds:
            inst, cls = corrupt(inst, cls, rng, kind, num_classes, rate)
        out[k, ..., 0], out[k, ..., 1] = scramble_ids(inst, rng), cls * (inst > 0)
    return out


def subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A fixed random subset of n image indices (sorted), including the first patch without nuclei if any."""
    chosen = set(np.random.default_rng(seed).choice(labels.shape[0], size=n, replace=False).tolist())
    empty = np.flatnonzero(labels[..., 0].reshape(labels.shape[0], -1).max(axis=1) == 0)
    if empty.size:
        chosen.add(int(empty[0]))
    return np.array(sorted(chosen))
