"""One pass over the pixels: compact labels, their areas, centroids and the (true, pred) overlap table.

Written by hand because the official scripts (and scikit-image's regionprops / contingency tables) build one
full-image mask per instance or sort every pixel; here each map costs a few ``np.bincount`` calls, and the
intersections of all (true, pred) instance pairs come from one joint histogram of pixel pairs.

A "segment" is an (instance id, class id) pair: it is a whole instance when the class map is constant on the
instance, or one class-part of an instance that the class map splits. CoNIC's per-class instances
(``inst * (cls == c)``) are exactly the segments of class c.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# A dense bincount is used while the key range stays within this many bins per pixel (plus a constant);
# beyond it (huge or sparse ids) np.unique is cheaper in memory.
_DENSE_BINS_PER_PIXEL = 4
_DENSE_BINS_EXTRA = 1 << 16
_INT64_MAX = int(np.iinfo(np.int64).max)


def _dense_ok(n_bins: int, n_pixels: int) -> bool:
    return n_bins <= _DENSE_BINS_PER_PIXEL * n_pixels + _DENSE_BINS_EXTRA


@dataclass(frozen=True)
class Compacted:
    """Labels 1..n of a flat key map (0 = background), with the raw key and the area of each label."""

    dense: np.ndarray  # (P,) intp, 0 = background, k = the k-th smallest non-background key
    keys: np.ndarray  # (n,) int64 raw key of label k+1, ascending
    area: np.ndarray  # (n,) int64 pixel count of label k+1

    @property
    def n(self) -> int:
        return int(self.keys.size)


def compact(keys: np.ndarray, n_background: int = 1) -> Compacted:
    """Relabel a flat non-negative int64 key map to 1..n; keys below ``n_background`` are background (0)."""
    n_pixels = keys.size
    top = int(keys.max()) if n_pixels else 0
    if top < n_background:  # nothing but background (e.g. an empty class channel)
        empty = np.zeros(0, np.int64)
        return Compacted(np.zeros(n_pixels, np.intp), empty, empty)
    if _dense_ok(top + 1, n_pixels):
        counts = np.bincount(keys, minlength=n_background)
        counts[:n_background] = 0
        present = np.flatnonzero(counts)
        lut = np.zeros(counts.size, np.intp)
        lut[present] = np.arange(1, present.size + 1)
        return Compacted(lut[keys], present.astype(np.int64), counts[present].astype(np.int64))
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    n_bg = int(np.searchsorted(uniq, n_background))  # number of distinct background keys present
    dense = inverse.reshape(-1) - (n_bg - 1)
    if n_bg:
        dense[dense < 0] = 0
    return Compacted(dense, uniq[n_bg:].astype(np.int64), counts[n_bg:].astype(np.int64))


@dataclass(frozen=True)
class Segments:
    """Segments (instance × class parts) of one labelled image and the instances they group into."""

    seg: Compacted  # labels of the segments
    seg_cls: np.ndarray  # (n_seg,) class id of each segment (0 = unclassified part of an instance)
    seg_inst: np.ndarray  # (n_seg,) 0-based instance index of each segment
    inst_area: np.ndarray  # (n_inst,) pixel count of each instance
    inst_ids: np.ndarray  # (n_inst,) raw instance id, ascending
    shape: tuple[int, int]

    @property
    def n_inst(self) -> int:
        return int(self.inst_ids.size)

    @property
    def n_seg(self) -> int:
        return self.seg.n

    @property
    def splits(self) -> bool:
        """Whether some instance has more than one segment (the class map splits it)."""
        return self.n_seg != self.n_inst


def segments(inst: np.ndarray, cls: np.ndarray | None, num_classes: int) -> Segments:
    """Segments of an (H, W) instance map and class map (``cls=None``: every instance is one segment)."""
    shape = (int(inst.shape[0]), int(inst.shape[1]))
    base = num_classes + 1
    if inst.size and int(inst.max()) > (_INT64_MAX - num_classes) // base:
        raise ValueError(f"instance id {int(inst.max())} too large to combine with {num_classes} classes; "
                         "relabel the ids first (cellprobe.metrics.inputs.instance_ids)")
    keys = inst.reshape(-1).astype(np.int64)
    if cls is not None and base > 1:
        keys *= base
        keys += cls.reshape(-1).astype(np.int64, copy=False)  # class ids <= num_classes
        seg = compact(keys, n_background=base)
        seg_inst_raw = seg.keys // base
        seg_cls = seg.keys - seg_inst_raw * base
    else:
        seg = compact(keys)
        seg_inst_raw = seg.keys
        seg_cls = np.zeros(seg.n, np.int64)
    if seg.n == 0:
        empty = np.zeros(0, np.int64)
        return Segments(seg, seg_cls, empty, empty, empty, shape)
    first = np.ones(seg.n, bool)
    first[1:] = seg_inst_raw[1:] != seg_inst_raw[:-1]
    starts = np.flatnonzero(first)
    seg_inst = np.cumsum(first) - 1
    inst_area = np.add.reduceat(seg.area, starts)
    return Segments(seg, seg_cls, seg_inst, inst_area, seg_inst_raw[starts], shape)


@dataclass(frozen=True)
class Overlap:
    """Non-zero intersections between labels 1..n_true of one map and 1..n_pred of another (0-based)."""

    ti: np.ndarray  # (K,) 0-based true label index
    pj: np.ndarray  # (K,) 0-based pred label index
    inter: np.ndarray  # (K,) int64 pixel count of the intersection, > 0


def overlap(true_dense: np.ndarray, n_true: int, pred_dense: np.ndarray, n_pred: int) -> Overlap:
    """All non-empty (true label, pred label) intersections, from one joint histogram of pixel pairs."""
    n_pixels = true_dense.size
    width = n_pred + 1
    if n_true == 0 or n_pred == 0:
        empty = np.zeros(0, np.int64)
        return Overlap(empty, empty, empty)
    if _dense_ok((n_true + 1) * width, n_pixels):
        hist = np.bincount(true_dense * width + pred_dense, minlength=(n_true + 1) * width)
        return _nonzero_cells(hist.reshape(n_true + 1, width))
    both = (true_dense > 0) & (pred_dense > 0)
    joint = true_dense[both].astype(np.int64) * width + pred_dense[both]
    uniq, counts = np.unique(joint, return_counts=True)
    return Overlap(uniq // width - 1, uniq % width - 1, counts.astype(np.int64))


def _nonzero_cells(counts: np.ndarray) -> Overlap:
    inner = counts[1:, 1:]
    ti, pj = np.nonzero(inner)
    return Overlap(ti, pj, inner[ti, pj].astype(np.int64))


def group_overlap(ov: Overlap, true_group: np.ndarray, pred_group: np.ndarray, n_pred_groups: int) -> Overlap:
    """Sum segment intersections into intersections of the groups (instances) the segments belong to."""
    ti = true_group[ov.ti]
    pj = pred_group[ov.pj]
    key = ti.astype(np.int64) * n_pred_groups + pj
    uniq, inverse = np.unique(key, return_inverse=True)
    inter = np.bincount(inverse.reshape(-1), weights=ov.inter, minlength=uniq.size).astype(np.int64)
    return Overlap(uniq // n_pred_groups, uniq % n_pred_groups, inter)


# --- Coordinate sums (centroids) packed into the joint histogram -------------------------------------------------
# One weighted bincount over (true, pred) pixel pairs with the weight 1 + S1·col + S2·row gives, for every cell,
# its pixel count, column sum and row sum in one float64 (all integers, exact below 2**53). Summing cells over
# the other map's labels then gives each label's area and coordinate sums: intersections and centroids of both
# maps in one pass. S1 exceeds any cell's count and S2/S1 any column sum, which holds while no label is larger
# than the shape's cap (4095 px for 256×256); larger labels take the fallback (separate bincounts).

_EXACT = 2**53


@lru_cache(maxsize=16)
def _packing(shape: tuple[int, int]) -> tuple[int, int, int]:
    """(largest label area packable, S1, S2) for an image shape; area 0 when nothing fits."""
    h, w = shape
    for bits in range(24, 0, -1):
        cap = (1 << bits) - 1
        s2_shift = bits + int(cap * max(w - 1, 1)).bit_length()
        if (cap * max(h - 1, 1) + 1) << s2_shift <= _EXACT:
            return cap, bits, s2_shift
    return 0, 0, 0


@lru_cache(maxsize=8)
def _packed_weights(shape: tuple[int, int]) -> np.ndarray:
    _, s1_shift, s2_shift = _packing(shape)
    rows = np.arange(shape[0], dtype=np.float64) * float(1 << s2_shift)
    cols = np.arange(shape[1], dtype=np.float64) * float(1 << s1_shift) + 1.0
    return (rows[:, None] + cols[None, :]).reshape(-1)


def _coordinate_sums(dense: np.ndarray, n_labels: int, shape: tuple[int, int]) -> np.ndarray:
    """(n_labels, 2) sums of (row, col) over labels 1..n_labels: the fallback, two weighted bincounts."""
    h, w = shape
    rows = np.repeat(np.arange(h, dtype=np.float64), w)
    cols = np.tile(np.arange(w, dtype=np.float64), h)
    return np.stack([np.bincount(dense, weights=v, minlength=n_labels + 1)[1:] for v in (rows, cols)], axis=1)


@dataclass(frozen=True)
class Joint:
    """Intersections of two labelled maps and the coordinate sums (row, col) of each map's labels."""

    overlap: Overlap
    true_sums: np.ndarray  # (n_true, 2) float64, exact integers
    pred_sums: np.ndarray  # (n_pred, 2)


def joint(t: Compacted, p: Compacted, shape: tuple[int, int]) -> Joint:
    """Overlap table and coordinate sums of two compacted maps of ``shape``, in one pass where possible."""
    width = p.n + 1
    cap, s1_shift, s2_shift = _packing(shape)
    largest = max(int(t.area.max(initial=0)), int(p.area.max(initial=0)))
    if largest <= cap and _dense_ok((t.n + 1) * width, t.dense.size):
        packed = np.bincount(t.dense * width + p.dense, weights=_packed_weights(shape), minlength=(t.n + 1) * width)
        packed = packed.reshape(t.n + 1, width)
        packed[0, 0] = 0.0  # background on both sides: too many pixels to pack, never used
        cells = packed.astype(np.int64)
        count = cells & ((1 << s1_shift) - 1)
        col = (cells >> s1_shift) & ((1 << (s2_shift - s1_shift)) - 1)
        row = cells >> s2_shift
        true_sums = np.stack([row[1:].sum(axis=1), col[1:].sum(axis=1)], axis=1).astype(np.float64)
        pred_sums = np.stack([row[:, 1:].sum(axis=0), col[:, 1:].sum(axis=0)], axis=1).astype(np.float64)
        return Joint(_nonzero_cells(count), true_sums, pred_sums)
    return Joint(overlap(t.dense, t.n, p.dense, p.n), _coordinate_sums(t.dense, t.n, shape),
                 _coordinate_sums(p.dense, p.n, shape))


def centroids(seg: Segments, sums: np.ndarray) -> np.ndarray:
    """(n_inst, 2) centroid (row, col) of every instance, from its segments' coordinate sums."""
    if seg.n_inst == 0:
        return np.zeros((0, 2))
    if seg.splits:
        sums = np.stack([np.bincount(seg.seg_inst, weights=sums[:, k], minlength=seg.n_inst) for k in (0, 1)], 1)
    return sums / seg.inst_area[:, None]


def crop_presence(seg: Segments, crop: int) -> np.ndarray:
    """(n_seg,) whether each segment has a pixel in the central crop × crop window (the challenge's
    ``cropping_center``): its area minus its pixels in the frame around the window, counted on the frame only."""
    h, w = seg.shape
    if crop > h or crop > w:
        raise ValueError(f"crop {crop} is larger than the image {h}×{w}")
    y0, x0 = int((h - crop) * 0.5), int((w - crop) * 0.5)
    dense = seg.seg.dense.reshape(h, w)
    frame = [dense[:y0], dense[y0 + crop :], dense[y0 : y0 + crop, :x0], dense[y0 : y0 + crop, x0 + crop :]]
    outside = np.bincount(np.concatenate([part.reshape(-1) for part in frame]), minlength=seg.n_seg + 1)[1:]
    return seg.seg.area - outside > 0


def majority_class(seg: Segments) -> np.ndarray:
    """(n_inst,) class of every instance by pixel vote, as HoVer-Net assigns types.

    The class with most pixels wins, ties go to the smaller class id, and class 0 (unclassified pixels) only
    when the instance has no classified pixel at all.
    """
    if not seg.splits:
        return seg.seg_cls.copy()
    score = np.where(seg.seg_cls > 0, seg.seg.area, -1)
    order = np.lexsort((seg.seg_cls, -score, seg.seg_inst))
    first = np.ones(order.size, bool)
    first[1:] = seg.seg_inst[order][1:] != seg.seg_inst[order][:-1]
    winner = order[first]
    return np.where(score[winner] > 0, seg.seg_cls[winner], 0)
