"""Training targets of the decoder, made from an instance map and a class map (CISCA, Vadori et al. 2024).

Definitions (``inst``: 0 = background, any positive ids, not necessarily contiguous):

- ``semantic`` (H, W) uint8: 0 background, 1 boundary, 2 cell body. A pixel of cell *i* is *boundary* when a
  pixel of another cell lies within ``boundary_radius`` px of it (offsets with dr² + dc² <= radius²): the band on both sides of
  the line where cells touch or nearly touch. This is CISCA's "touching" class (its label script marks the
  pixels where the per-cell dilations by a disk of radius 2 at 40× / a 3×3 square at 20× overlap); its extra
  clean-up of tiny fragments is left out. Every other cell pixel is *body*.
- ``distance`` (4, H, W) float32 in [-1, 1]: CISCA's "full range" directional maps. For each cell and each
  direction u (horizontal →, vertical ↓, diagonal ↘, anti-diagonal ↗) the projection ``p = u · (row, col)``
  of its pixels is min-max normalised within the cell to [-1, 1] (-1 at the cell's first pixel along u,
  +1 at its last). A cell one pixel thick along u gets 0 there. Background is 0. Inside a cell every map
  increases along its direction; where two cells touch it drops by about 2, which is what post-processing
  detects (:mod:`cellprobe.postprocess`).
- ``cls`` (H, W) int64: the class map, 0 outside instances.
- ``hv`` (2, H, W) float32 in [-1, 1]: HoVer-Net's maps (Graham et al. 2019), the alternative target: the
  horizontal / vertical offset of each pixel from its cell's centroid, negative offsets divided by the
  largest negative one and positive offsets by the largest positive one, per cell. (HoVer-Net's own code
  rounds the centroid to a pixel; the exact centroid is used here.)

Everything is computed on the list of foreground pixels at once (per-cell minima/maxima with ``ufunc.at``,
centroids with ``bincount``, the touching test with one grey dilation and one erosion of the id map), so the
cost does not grow with a Python loop over cells: a 256² CoNSeP patch takes about 1 ms (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import Field
from skimage.morphology import disk

from cellprobe.config import StrictModel
from cellprobe.errors import InputError

BACKGROUND, BOUNDARY, BODY = 0, 1, 2
#: unit vectors (d_row, d_col) of the four distance maps, in channel order
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (-1, 1))
DIRECTION_NAMES = ("horizontal", "vertical", "diagonal", "anti_diagonal")
# compact ids through a lookup table while the largest id is below this; np.unique above it
_LUT_MAX_ID = 1 << 22


class TargetConfig(StrictModel):
    """Sizes of the targets. ``boundary_radius``: px; 2 for 40× data (CISCA), 1 for 20×."""

    boundary_radius: int = Field(2, ge=1, le=32)


@dataclass(frozen=True)
class Targets:
    semantic: np.ndarray  # (H, W) uint8: 0 background, 1 boundary, 2 body
    distance: np.ndarray  # (4, H, W) float32 in [-1, 1]
    cls: np.ndarray  # (H, W) int64
    hv: np.ndarray  # (2, H, W) float32 in [-1, 1]


def _check(inst: np.ndarray, cls: np.ndarray, where: str | None) -> None:
    if inst.ndim != 2:
        raise InputError(where, f"instance map must be 2-D (H, W), got shape {inst.shape}")
    if cls.shape != inst.shape:
        raise InputError(where, f"class map shape {cls.shape} differs from instance map shape {inst.shape}")
    for name, arr in (("instance", inst), ("class", cls)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(where, f"{name} map must hold integers, got {arr.dtype}")
        if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and int(arr.min()) < 0:
            raise InputError(where, f"{name} map has negative values (min {int(arr.min())})")


def compact_ids(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Map positive ids (any values) to 1..K in increasing id order; returns (labels, K)."""
    if ids.size == 0:
        return np.zeros(0, np.int32), 0
    top = int(ids.max())
    if top < _LUT_MAX_ID:
        present = np.bincount(ids, minlength=top + 1) > 0
        present[0] = False
        lut = np.cumsum(present, dtype=np.int32)
        return lut[ids], int(lut[-1])
    uniq, inverse = np.unique(ids, return_inverse=True)
    return (inverse + 1).astype(np.int32), len(uniq)


class _CellReducer:
    """Per-cell minima and maxima of pixel values, with one sort of the pixels by cell.

    A counting-type sort plus ``ufunc.reduceat`` is about 3x faster here than ``np.minimum.at`` per value.
    ``lab`` holds labels 1..k, every label present; results are indexed by label (index 0 unused).
    """

    def __init__(self, lab: np.ndarray, k: int) -> None:
        self.lab, self.k = lab, k
        self.order = np.argsort(lab.astype(np.uint16) if k < 1 << 16 else lab, kind="stable")
        self.starts = np.cumsum(np.bincount(lab, minlength=k + 1))[:-1]

    def range(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.k == 0:
            return np.zeros(1, values.dtype), np.zeros(1, values.dtype)
        ordered = values[self.order]
        lo = np.minimum.reduceat(ordered, self.starts)
        hi = np.maximum.reduceat(ordered, self.starts)
        return np.concatenate([lo[:1], lo]), np.concatenate([hi[:1], hi])

    def normalised(self, p: np.ndarray) -> np.ndarray:
        """``p`` min-max normalised to [-1, 1] within each cell (exactly -1 and +1 at the extremes); 0 where a
        cell has a single value."""
        lo, hi = self.range(p)
        span = (hi - lo)[self.lab]
        out = np.zeros(p.shape, np.float32)
        thick = span > 0
        out[thick] = 2.0 * (p - lo[self.lab])[thick] / span[thick] - 1.0
        return out

    def hover(self, offset: np.ndarray) -> np.ndarray:
        """HoVer-Net normalisation: negative offsets / |largest negative|, positive / largest positive."""
        lo, hi = self.range(offset)
        neg = np.where(lo < 0, -1.0 / np.where(lo < 0, lo, -1.0), 0.0)
        pos = np.where(hi > 0, 1.0 / np.where(hi > 0, hi, 1.0), 0.0)
        return (offset * np.where(offset < 0, neg[self.lab], pos[self.lab])).astype(np.float32)


def touching_mask(labels: np.ndarray, radius: int) -> np.ndarray:
    """Foreground pixels with a pixel of another instance within ``radius`` px (Euclidean disk: offsets with
    dr² + dc² <= radius²); ``labels`` 0..K."""
    footprint = disk(radius).astype(np.uint8)  # offsets with dr² + dc² <= radius²
    # float32 ids are exact below 2**24 instances; OpenCV's dilate/erode are ~50x faster than scipy's here
    ids = labels.astype(np.float32)
    fg = labels > 0
    larger = cv2.dilate(ids, footprint, borderType=cv2.BORDER_CONSTANT, borderValue=0.0) > ids
    big = np.float32(labels.max() + 1)
    smaller = cv2.erode(np.where(fg, ids, big), footprint, borderType=cv2.BORDER_CONSTANT,
                        borderValue=float(big)) < ids
    return fg & (larger | smaller)


def make_targets(inst: np.ndarray, cls: np.ndarray, config: TargetConfig | None = None,
                 where: str | None = None) -> Targets:
    """Targets of one labelled patch (see the module docstring); ``where`` names it in error messages."""
    inst, cls = np.asarray(inst), np.asarray(cls)
    _check(inst, cls, where)
    cfg = config or TargetConfig()
    h, w = inst.shape
    flat = inst.reshape(-1)
    idx = np.flatnonzero(flat)
    lab, k = compact_ids(flat[idx].astype(np.int64, copy=False))

    labels = np.zeros(h * w, np.int32)
    labels[idx] = lab
    semantic = np.zeros(h * w, np.uint8)
    semantic[idx] = BODY
    semantic = semantic.reshape(h, w)
    semantic[touching_mask(labels.reshape(h, w), cfg.boundary_radius)] = BOUNDARY

    row, col = np.divmod(idx.astype(np.int32), np.int32(w))
    cells = _CellReducer(lab, k)
    distance = np.zeros((4, h * w), np.float32)
    for ch, (dr, dc) in enumerate(DIRECTIONS):
        distance[ch, idx] = cells.normalised(dr * row + dc * col)

    hv = np.zeros((2, h * w), np.float32)
    if k:
        count = np.bincount(lab, minlength=k + 1).astype(np.float64)
        count[0] = 1.0
        centre_col = np.bincount(lab, weights=col, minlength=k + 1) / count
        centre_row = np.bincount(lab, weights=row, minlength=k + 1) / count
        hv[0, idx] = cells.hover(col - centre_col[lab])
        hv[1, idx] = cells.hover(row - centre_row[lab])

    cls_target = np.zeros(h * w, np.int64)
    cls_target[idx] = cls.reshape(-1)[idx]
    return Targets(semantic, distance.reshape(4, h, w), cls_target.reshape(h, w), hv.reshape(2, h, w))


__all__ = ["BACKGROUND", "BODY", "BOUNDARY", "DIRECTIONS", "DIRECTION_NAMES", "TargetConfig", "Targets",
           "compact_ids", "make_targets", "touching_mask"]
