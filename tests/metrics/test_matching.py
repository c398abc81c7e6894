"""matching: hand-computed pairings (IoU threshold, AJI, AJI+, Dice, centroid pairing)."""

from __future__ import annotations

import numpy as np
import pytest

from cellprobe.metrics.labels import overlap, segments
from cellprobe.metrics.matching import aji_and_aji_plus_sums, dice2_sums, iou_pairs, pair_centroids, pair_iou


def _ov(true, pred):
    t, p = segments(np.asarray(true), None, 0), segments(np.asarray(pred), None, 0)
    return overlap(t.seg.dense, t.n_seg, p.seg.dense, p.n_seg), t.inst_area, p.inst_area


# true A = 4 px, B = 4 px; prediction P covers A and half of B (6 px).
TRUE = [[1, 1, 2, 2], [1, 1, 2, 2]]
PRED = [[7, 7, 7, 0], [7, 7, 7, 0]]


def test_iou_threshold_is_strict():
    ov, ta, pa = _ov([[1, 1, 0, 0]], [[3, 3, 3, 3]])  # IoU exactly 0.5: not a match
    iou = pair_iou(ov, ta, pa)
    assert iou.tolist() == [0.5] and not iou_pairs(ov, iou, 0.5).any()
    with pytest.raises(ValueError):
        iou_pairs(ov, iou, 0.4)


def test_aji_shares_predictions_and_aji_plus_pairs_one_to_one():
    ov, ta, pa = _ov(TRUE, PRED)
    aji_inter, aji_union, plus_inter, plus_union = aji_and_aji_plus_sums(ov, ta, pa)
    assert (aji_inter, aji_union) == (6.0, 14.0)  # AJI: P serves A and B: (4 + 2) / (6 + 8)
    assert (plus_inter, plus_union) == (4.0, 10.0)  # AJI+: A-P 4 / 6, B unpaired adds 4 to the union


def test_aji_with_an_empty_side():
    ov, ta, pa = _ov(TRUE, np.zeros((2, 4), int))
    assert aji_and_aji_plus_sums(ov, ta, pa) == (0.0, 8.0, 0.0, 8.0)
    ov, ta, pa = _ov(np.zeros((2, 4), int), np.zeros((2, 4), int))
    assert aji_and_aji_plus_sums(ov, ta, pa) == (0.0, 0.0, 0.0, 0.0)


def test_dice2_sums_over_overlapping_pairs():
    ov, ta, pa = _ov(TRUE, PRED)
    assert dice2_sums(ov, ta, pa) == (6.0, 20.0)  # DICE2 = 2 * 6 / 20


def test_centroid_pairing_keeps_distance_equal_to_radius():
    true = np.array([[0.0, 0.0], [0.0, 30.0]])
    pred = np.array([[0.0, 12.0], [0.0, 43.0]])
    rows, cols = pair_centroids(true, pred, 12.0)
    assert rows.tolist() == [0] and cols.tolist() == [0]


def test_centroid_pairing_minimises_total_distance_before_the_radius_cut():
    # Hungarian over all points: t0-p1 and t1-p0 (total 101) beats t0-p0 and t1-p1 (total 121); only t1-p0
    # survives the radius, whereas a greedy nearest match would also have kept t0-p0.
    true = np.array([[0.0, 0.0], [0.0, 10.0]])
    pred = np.array([[0.0, 11.0], [0.0, -100.0]])
    rows, cols = pair_centroids(true, pred, 12.0)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(1, 0)]
    assert pair_centroids(true, np.zeros((0, 2)), 12.0)[0].size == 0
