"""image: per-image statistics against the plain implementation, on real patches and hand-made maps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellprobe.metrics.aggregate import conic_image_metrics
from cellprobe.metrics.image import (
    conic_columns,
    conic_image_row,
    merge_channels,
    pannuke_columns,
    pannuke_image_row,
)
from cellprobe.metrics.labels import compact

from . import plain
from .corrupt import KINDS, corrupt, subsample


def _row(true_inst, true_cls, pred_inst, pred_cls, num_classes, radius=12.0, crop=None):
    values = conic_image_row(true_inst, true_cls, pred_inst, pred_cls, num_classes=num_classes, radius=radius,
                             r2_crop=crop)
    return dict(zip(conic_columns(num_classes, crop is not None), values.tolist(), strict=True))


def _same(got, ref):
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("kind", KINDS)
def test_conic_row_matches_plain_on_real_patches(consep_labels, kind):
    rng = np.random.default_rng(KINDS.index(kind))
    for k in subsample(consep_labels, 2, seed=3):  # two real patches and one without nuclei
        ti, tc = consep_labels[k, ..., 0], consep_labels[k, ..., 1]
        pi, pc = corrupt(ti, tc, rng, kind, 4, rate=0.3)
        got = _row(ti, tc, pi, pc, 4, crop=224)
        _same(got, plain.image_row(ti, tc, pi, pc, 4, radius=12.0, crop=224))
        metrics = conic_image_metrics(pd.DataFrame([got])).iloc[0]
        for name, ref in (("aji", plain.aji), ("aji_plus", plain.aji_plus), ("dice", plain.dice1),
                          ("dice2", plain.dice2)):
            assert metrics[name] == pytest.approx(ref(ti, pi), abs=1e-12, nan_ok=True), name


def test_hand_made_row():
    true_inst = np.array([[1, 1, 0, 2], [1, 1, 0, 2], [0, 0, 0, 0]])
    true_cls = np.array([[1, 1, 0, 2], [1, 1, 0, 2], [0, 0, 0, 0]])
    pred_inst = np.array([[9, 9, 9, 0], [9, 9, 0, 0], [0, 0, 0, 4]])
    pred_cls = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 2]])
    row = _row(true_inst, true_cls, pred_inst, pred_cls, 2, radius=1.0)
    # instance 1 (4 px) vs 9 (5 px): IoU 0.8, a match; instance 2 and prediction 4 do not touch
    assert (row["tp"], row["fp"], row["fn"], row["iou_sum"]) == (1, 1, 1, 0.8)
    assert (row["tp_c1"], row["fp_c1"], row["fn_c1"]) == (1, 0, 0)
    assert (row["tp_c2"], row["fp_c2"], row["fn_c2"]) == (0, 1, 1)
    assert row["true_count_c2"] == 1 and row["pred_count_c1"] == 1
    # centroids: 1 at (0.5, 0.5), 9 at (0.4, 0.8): paired; 2 at (0.5, 3) vs 4 at (2, 3): 1.5 > radius 1
    assert row["det_pair_t1_p1"] == 1 and row["det_fn_t2"] == 1 and row["det_fp_p2"] == 1
    assert (row["aji_inter"], row["aji_union"]) == (4.0, 5.0 + 2 + 1)
    assert (row["dice_inter"], row["dice_total"]) == (4.0, 12.0)


def test_row_of_empty_maps():
    zeros = np.zeros((8, 8), np.int64)
    row = _row(zeros, zeros, zeros, zeros, 3)
    assert all(v == 0 for v in row.values())


def test_crop_larger_than_image_is_refused():
    zeros = np.zeros((8, 8), np.int64)
    with pytest.raises(ValueError, match="crop"):
        _row(zeros, zeros, zeros, zeros, 1, crop=9)


def test_merge_channels_later_channels_overwrite():
    masks = np.zeros((1, 4, 3), np.int64)
    masks[0, :, 0] = [1, 1, 2, 0]
    masks[0, :, 1] = [0, 1, 1, 0]  # same id 1 as channel 0, but another instance
    merged = merge_channels([compact(masks[..., k].reshape(-1)) for k in range(2)])
    # channel 0's id 2 is covered entirely, its id 1 keeps one pixel; channel 1's id 1 is a third instance
    assert merged.dense.tolist() == [1, 2, 2, 0] and merged.keys.tolist() == [1, 3]
    assert merge_channels([]).n == 0


def test_pannuke_row_matches_plain(consep_labels):
    rng = np.random.default_rng(5)
    for k in subsample(consep_labels, 2, seed=9)[-2:]:
        masks_t = np.zeros((256, 256, 6))
        masks_p = np.zeros((256, 256, 6))
        ti, tc = consep_labels[k, ..., 0], consep_labels[k, ..., 1]
        pi, pc = corrupt(ti, tc, rng, "shift", 4, rate=0.5)
        for c in range(1, 5):
            masks_t[..., c - 1] = ti * (tc == c)
            masks_p[..., c - 1] = pi * (pc == c)
        masks_p[..., 4] = corrupt(ti, tc, rng, "split", 4, rate=0.5)[0]  # overlaps the other channels
        row = dict(zip(pannuke_columns(5), pannuke_image_row(masks_t, masks_p, num_classes=5).tolist(), strict=True))
        ref = plain.pq_stats(plain.binarize(masks_t, 5), plain.binarize(masks_p, 5))
        assert [row[s] for s in ("tp", "fp", "fn", "iou_sum")] == pytest.approx(ref, abs=1e-12)
        for c in range(5):
            ref = plain.pq_stats(masks_t[..., c].astype(int), masks_p[..., c].astype(int))
            got = [row[f"{s}_c{c + 1}"] for s in ("tp", "fp", "fn", "iou_sum")]
            assert got == pytest.approx(ref, abs=1e-12)
