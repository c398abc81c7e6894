"""Per-image sufficient statistics: one row of numbers per image, from which every summary is recomputed.

A row holds counts and sums only (TP/FP/FN/ΣIoU, nucleus counts, detection pair and type-confusion counts, AJI
and Dice numerators/denominators), so that pooled metrics (mPQ+, F1, R²) and image-averaged metrics (PQ, AJI)
can both be recomputed from any subset or resample of rows (the benchmark's bootstrap).

Column names, with classes c = 1..C and types t, p = 0..C (0 = an instance without classified pixels):
- binary (instances of the instance map, class ignored): ``n_true n_pred tp fp fn iou_sum``
- per class (CoNIC: ``inst * (cls == c)``; PanNuke: channel c-1): ``tp_c{c} fp_c{c} fn_c{c} iou_sum_c{c}``
- CoNIC counts for R²: ``true_count_c{c} pred_count_c{c}`` (whole patch), ``true_count_crop_c{c}``,
  ``pred_count_crop_c{c}`` (central crop, when asked)
- detection (CoNIC): ``det_pair_t{t}_p{p}`` (paired centroids by true type t and predicted type p),
  ``det_fn_t{t}`` (unpaired true of type t), ``det_fp_p{p}`` (unpaired predictions of type p)
- CoNIC: ``aji_inter aji_union ajip_inter ajip_union dice_inter dice_total dice2_inter dice2_total``
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from cellprobe.metrics.labels import (
    Compacted,
    Segments,
    centroids,
    compact,
    crop_presence,
    group_overlap,
    joint,
    majority_class,
    overlap,
    segments,
)
from cellprobe.metrics.matching import aji_and_aji_plus_sums, dice2_sums, iou_pairs, pair_centroids, pair_iou

BINARY_COLUMNS = ("n_true", "n_pred", "tp", "fp", "fn", "iou_sum")
PQ_STATS = ("tp", "fp", "fn", "iou_sum")
OVERLAP_COLUMNS = (
    "aji_inter", "aji_union", "ajip_inter", "ajip_union", "dice_inter", "dice_total", "dice2_inter", "dice2_total",
)  # fmt: skip


def class_columns(num_classes: int, stats: tuple[str, ...] = PQ_STATS) -> list[str]:
    return [f"{s}_c{c}" for c in range(1, num_classes + 1) for s in stats]


def count_columns(num_classes: int, crop: bool) -> list[str]:
    region = "_crop" if crop else ""
    return [f"{who}_count{region}_c{c}" for who in ("true", "pred") for c in range(1, num_classes + 1)]


def detection_columns(num_classes: int) -> list[str]:
    types = range(num_classes + 1)
    return (
        [f"det_pair_t{t}_p{p}" for t in types for p in types]
        + [f"det_fn_t{t}" for t in types]
        + [f"det_fp_p{p}" for p in types]
    )


@lru_cache(maxsize=32)
def conic_columns(num_classes: int, crop: bool) -> tuple[str, ...]:
    """Column order of :func:`conic_image_row`."""
    cols = [*BINARY_COLUMNS, *class_columns(num_classes), *count_columns(num_classes, False)]
    if crop:
        cols += count_columns(num_classes, True)
    return (*cols, *detection_columns(num_classes), *OVERLAP_COLUMNS)


@lru_cache(maxsize=32)
def pannuke_columns(num_classes: int) -> tuple[str, ...]:
    """Column order of :func:`pannuke_image_row` (the tissue name is added beside it)."""
    return (*BINARY_COLUMNS, *class_columns(num_classes))


def per_image_problem(table: Any, fmt: str, num_classes: int) -> str | None:
    """Why ``table`` (a per-image table read back from disk, e.g. a benchmark cell's) cannot be the statistics
    :func:`conic_image_row` / :func:`pannuke_image_row` wrote, or None: no rows, a statistic column missing, an
    image listed twice, a value that is not a finite number >= 0, a count that is not whole, or counts that
    contradict each other (TP + FN must be the true nuclei, TP + FP the predicted ones, a ΣIoU at most its TP).
    Every summary and bootstrap is recomputed from these rows: a damaged one would pass as a result."""
    crop = "true_count_crop_c1" in table.columns
    columns = conic_columns(num_classes, crop) if fmt == "conic" else (*pannuke_columns(num_classes), "tissue")
    if len(table) == 0:
        return "has no rows"
    missing = [c for c in columns if c not in table.columns]
    if missing:
        return f"lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing[:4])}"
    if "image" in table.columns and table["image"].duplicated().any():
        return f"lists image {table['image'][table['image'].duplicated()].iloc[0]!r} twice"
    numbers = [c for c in columns if c != "tissue"]
    try:
        values = table[numbers].to_numpy(np.float64)
    except (TypeError, ValueError):
        return "holds statistics that are not numbers"
    bad = ~np.isfinite(values) | (values < 0)
    counts = [i for i, c in enumerate(numbers) if not c.startswith("iou_sum") and c not in OVERLAP_COLUMNS]
    bad[:, counts] |= values[:, counts] != np.round(values[:, counts])
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        return f"row {row}: {numbers[col]} = {float(values[row, col])!r} is not a count or sum a scoring can give"
    at = {c: values[:, i] for i, c in enumerate(numbers)}
    checks = [("tp + fn", at["tp"] + at["fn"], "n_true", at["n_true"]),
              ("tp + fp", at["tp"] + at["fp"], "n_pred", at["n_pred"])]
    for suffix in ["", *(f"_c{c}" for c in range(1, num_classes + 1))]:
        checks.append((f"iou_sum{suffix}", at[f"iou_sum{suffix}"], f"tp{suffix}", at[f"tp{suffix}"] + 1e-9))
    for left, a, right, b in checks:
        wrong = (a > b) if left.startswith("iou_sum") else (a != b)
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            relation = "exceeds" if left.startswith("iou_sum") else "differs from"
            return f"row {row}: {left} ({a[row]:g}) {relation} {right} ({at[right][row]:g})"
    return None


def _pq_counts(ov, true_area, pred_area, match_iou):
    iou = pair_iou(ov, true_area, pred_area)
    hit = iou_pairs(ov, iou, match_iou)
    tp = int(hit.sum())
    return [true_area.size, pred_area.size, tp, pred_area.size - tp, true_area.size - tp, float(iou[hit].sum())]


def _class_pq_counts(ov, ts: Segments, ps: Segments, num_classes: int, match_iou: float) -> np.ndarray:
    """(C, 4) tp, fp, fn, ΣIoU of the per-class instances (segments of class c) of one image."""
    t_cls = ts.seg_cls[ov.ti]
    same = (t_cls == ps.seg_cls[ov.pj]) & (t_cls > 0)
    iou = pair_iou(ov, ts.seg.area, ps.seg.area)
    hit = same & iou_pairs(ov, iou, match_iou)
    width = num_classes + 1
    tp = np.bincount(t_cls[hit], minlength=width)[1:]
    iou_sum = np.bincount(t_cls[hit], weights=iou[hit], minlength=width)[1:]
    n_true = np.bincount(ts.seg_cls, minlength=width)[1:]
    n_pred = np.bincount(ps.seg_cls, minlength=width)[1:]
    return np.stack([tp, n_pred - tp, n_true - tp, iou_sum], axis=1)


def _crop_counts(s: Segments, crop: int, num_classes: int) -> np.ndarray:
    """Per-class number of segments with at least one pixel in the central crop × crop window."""
    return np.bincount(s.seg_cls[crop_presence(s, crop)], minlength=num_classes + 1)[1:]


def _detection(ts: Segments, ps: Segments, t_sums: np.ndarray, p_sums: np.ndarray, num_classes: int,
               radius: float) -> np.ndarray:
    width = num_classes + 1
    t_type, p_type = majority_class(ts), majority_class(ps)
    rows, cols = pair_centroids(centroids(ts, t_sums), centroids(ps, p_sums), radius)
    pairs = np.bincount(t_type[rows] * width + p_type[cols], minlength=width * width)
    t_left = np.ones(ts.n_inst, bool)
    t_left[rows] = False
    p_left = np.ones(ps.n_inst, bool)
    p_left[cols] = False
    fn = np.bincount(t_type[t_left], minlength=width)
    fp = np.bincount(p_type[p_left], minlength=width)
    return np.concatenate([pairs, fn, fp])


def conic_image_row(
    true_inst: np.ndarray,
    true_cls: np.ndarray,
    pred_inst: np.ndarray,
    pred_cls: np.ndarray,
    *,
    num_classes: int,
    radius: float,
    match_iou: float = 0.5,
    r2_crop: int | None = None,
) -> np.ndarray:
    """Sufficient statistics of one image (columns :func:`conic_columns`), from valid (H, W) maps.

    Inputs must already be checked (non-negative integer ids, class ids <= num_classes): see
    :mod:`cellprobe.metrics.inputs`.
    """
    return conic_segments_row(segments(true_inst, true_cls, num_classes), segments(pred_inst, pred_cls, num_classes),
                              num_classes=num_classes, radius=radius, match_iou=match_iou, r2_crop=r2_crop)


def conic_segments_row(
    ts: Segments,
    ps: Segments,
    *,
    num_classes: int,
    radius: float,
    match_iou: float = 0.5,
    r2_crop: int | None = None,
) -> np.ndarray:
    """:func:`conic_image_row` from the :func:`~cellprobe.metrics.labels.segments` of both maps (computed
    once when the caller also validates them)."""
    table = joint(ts.seg, ps.seg, ts.shape)
    seg_ov = table.overlap
    if ts.splits or ps.splits:
        inst_ov = group_overlap(seg_ov, ts.seg_inst, ps.seg_inst, max(ps.n_inst, 1))
    else:
        inst_ov = seg_ov
    ta, pa = ts.inst_area, ps.inst_area

    binary = _pq_counts(inst_ov, ta, pa, match_iou)
    per_class = _class_pq_counts(seg_ov, ts, ps, num_classes, match_iou)
    width = num_classes + 1
    counts = [np.bincount(ts.seg_cls, minlength=width)[1:], np.bincount(ps.seg_cls, minlength=width)[1:]]
    if r2_crop is not None:
        counts += [_crop_counts(ts, r2_crop, num_classes), _crop_counts(ps, r2_crop, num_classes)]
    detection = _detection(ts, ps, table.true_sums, table.pred_sums, num_classes, radius)
    fg_inter = float(seg_ov.inter.sum())
    sums = [
        *aji_and_aji_plus_sums(inst_ov, ta, pa),
        fg_inter,
        float(ta.sum() + pa.sum()),
        *dice2_sums(inst_ov, ta, pa),
    ]
    return np.concatenate(
        [np.asarray(binary, np.float64), per_class.reshape(-1), *counts, detection, np.asarray(sums)]
    ).astype(np.float64)


def _channels(masks: np.ndarray, num_classes: int) -> list[Compacted]:
    """Compacted instance labels of each class channel of (H, W, >= num_classes) masks."""
    planes = np.moveaxis(masks[..., :num_classes], -1, 0).reshape(num_classes, -1).astype(np.int64, copy=False)
    return [compact(plane) for plane in planes]


def merge_channels(channels: list[Compacted]) -> Compacted:
    """PanNuke's binary instance map: every (channel, id) becomes its own instance, later channels
    overwriting earlier ones where they overlap (the official ``binarize``)."""
    merged = np.zeros(channels[0].dense.size if channels else 0, np.int64)
    offset = 0
    for lab in channels:
        if lab.n:
            np.copyto(merged, lab.dense + offset, where=lab.dense > 0)
            offset += lab.n
    return compact(merged)


def _pq_of(t: Compacted, p: Compacted, match_iou: float) -> list:
    return _pq_counts(overlap(t.dense, t.n, p.dense, p.n), t.area, p.area, match_iou)


def pannuke_image_row(true_masks: np.ndarray, pred_masks: np.ndarray, *, num_classes: int,
                      match_iou: float = 0.5) -> np.ndarray:
    """Sufficient statistics of one PanNuke image (columns :func:`pannuke_columns`) from valid
    (H, W, num_classes [+ background]) instance masks: binary on merged channels, then per channel."""
    t_channels, p_channels = _channels(true_masks, num_classes), _channels(pred_masks, num_classes)
    row = _pq_of(merge_channels(t_channels), merge_channels(p_channels), match_iou)
    for t, p in zip(t_channels, p_channels, strict=True):
        row += _pq_of(t, p, match_iou)[2:]
    return np.asarray(row, np.float64)
