"""One tile's maps → the nuclei it owns, as columns: run in the engine's worker processes.

Post-processing is the whole-image one (``instances_from_maps`` + ``assign_types`` with the run's
parameters) on the tile's maps; then each instance is kept only by the tile that owns it
(:func:`cellprobe.inference.slide_tiles.owns`), and measured in level-0 pixels and µm. The function is a
plain top-level function of picklable arguments so that a process pool can run it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from cellprobe.inference.export import instance_rings
from cellprobe.inference.slide_tiles import Tile, owns

#: namespace of the nuclei's UUIDs: uuid5(namespace, "<slide>/<tile>/<k>") is the same on every run
CELL_NAMESPACE = uuid.UUID("6f1c7d0e-5b8a-4c33-9a61-2f0e4b7c9d15")


@dataclass(frozen=True)
class CellContext:
    """What every tile's post-processing needs: the run's thresholds, the scale (level-0 px per target px),
    target µm/px, and the slide's name (for the UUIDs)."""

    params: Any
    num_classes: int
    scale: float
    target_mpp: float
    slide_key: str


@dataclass
class TileCells:
    """The nuclei one tile owns, in label order: ``uuid``; ``x``, ``y``: centroid in level-0 px; ``area``:
    µm²; ``cls``: class id 1..C; ``probs`` (n, C): mean class probability over the nucleus (background left
    out and the rest renormalised, as in the type vote); ``outline``: (k, 2) level-0 vertices of each
    nucleus's largest piece, closed. ``cut``: instances with their centroid in the core that touch an inner
    tile edge (dropped; 0 when the overlap exceeds every nucleus); ``seconds``: post-processing time."""

    tile: int
    uuid: list[str] = field(default_factory=list)
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    area: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cls: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    outline: list[np.ndarray] = field(default_factory=list)
    cut: int = 0
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.uuid)

    def subset(self, keep: np.ndarray) -> TileCells:
        """These nuclei where ``keep`` (bool, one per nucleus) is true; their UUIDs stay theirs."""
        index = np.flatnonzero(keep)
        return TileCells(self.tile, [self.uuid[i] for i in index], self.x[index], self.y[index], self.area[index],
                         self.cls[index], self.probs[index] if len(self.probs) else self.probs,
                         [self.outline[i] for i in index], self.cut, self.seconds)


def _largest_ring(rings: list[list[list[float]]]) -> np.ndarray:
    def area(r: np.ndarray) -> float:
        return 0.5 * abs(float(np.dot(r[:-1, 0], r[1:, 1]) - np.dot(r[1:, 0], r[:-1, 1])))

    arrays = [np.asarray(r, dtype=np.float64) for r in rings]
    return max(arrays, key=area)


def _touches_inner_edge(where: tuple[slice, slice], tile: Tile) -> bool:
    left, top, right, bottom = tile.inner
    return ((left and where[1].start == 0) or (top and where[0].start == 0)
            or (right and where[1].stop == tile.width) or (bottom and where[0].stop == tile.height))


def tile_cells(maps: dict[str, np.ndarray], tile: Tile, ctx: CellContext) -> TileCells:
    """The nuclei ``tile`` owns, from its maps (``semantic`` (3,h,w), ``distance`` (4,h,w), ``types``
    (C+1,h,w))."""
    from cellprobe.postprocess import assign_types, instances_from_maps

    start = time.perf_counter()
    inst = instances_from_maps(maps["semantic"], maps["distance"], ctx.params)
    _, types = assign_types(inst, maps["types"])
    n = int(inst.max())
    out = TileCells(tile.index)
    if n == 0:
        out.seconds = time.perf_counter() - start
        return out
    flat = inst.ravel()
    counts = np.bincount(flat, minlength=n + 1).astype(np.float64)
    yy, xx = np.indices(inst.shape)
    cy = np.bincount(flat, weights=yy.ravel(), minlength=n + 1) / np.maximum(counts, 1) + 0.5 + tile.y
    cx = np.bincount(flat, weights=xx.ravel(), minlength=n + 1) / np.maximum(counts, 1) + 0.5 + tile.x
    sums = np.stack([np.bincount(flat, weights=maps["types"][c].ravel(), minlength=n + 1)
                     for c in range(1, ctx.num_classes + 1)], axis=1)
    keep, outlines = [], []
    for label, where in enumerate(ndimage.find_objects(inst), start=1):
        if where is None or not owns(tile, cx[label], cy[label]):
            continue
        if _touches_inner_edge(where, tile):
            out.cut += 1
            continue
        rings = instance_rings(inst[where] == label, (tile.y + where[0].start, tile.x + where[1].start))
        keep.append(label)
        outlines.append((_largest_ring(rings) * ctx.scale).astype(np.float32))
    labels = np.asarray(keep, dtype=np.int64)
    probs = sums[labels] / np.maximum(sums[labels].sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    out.uuid = [str(uuid.uuid5(CELL_NAMESPACE, f"{ctx.slide_key}/{tile.index}/{k}")) for k in range(len(keep))]
    out.x, out.y = cx[labels] * ctx.scale, cy[labels] * ctx.scale
    out.area = (counts[labels] * ctx.target_mpp ** 2).astype(np.float32)
    out.cls = np.asarray([types[int(label)] for label in labels], dtype=np.int16)
    out.probs = probs.astype(np.float32)
    out.outline = outlines
    out.seconds = time.perf_counter() - start
    return out
