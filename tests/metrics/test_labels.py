"""labels: compaction, segments, the joint overlap table, centroids and type votes (both code paths each)."""

from __future__ import annotations

import numpy as np
import pytest

from cellprobe.metrics import labels
from cellprobe.metrics.labels import (
    centroids,
    compact,
    crop_presence,
    group_overlap,
    joint,
    majority_class,
    overlap,
    segments,
)


def test_compact_dense_path_relabels_in_key_order():
    keys = np.array([0, 7, 7, 3, 0, 9, 3, 3])
    c = compact(keys)
    assert c.keys.tolist() == [3, 7, 9] and c.area.tolist() == [3, 2, 1]
    assert c.dense.tolist() == [0, 2, 2, 1, 0, 3, 1, 1]


def test_compact_sparse_path_matches_dense(monkeypatch):
    keys = np.array([2, 0, 10**12, 2, 5, 10**12, 1])
    sparse = compact(keys, n_background=2)  # 10**12 forces np.unique; keys 0 and 1 are background
    assert sparse.keys.tolist() == [2, 5, 10**12] and sparse.area.tolist() == [2, 1, 2]
    assert sparse.dense.tolist() == [1, 0, 3, 1, 2, 3, 0]
    small = np.array([2, 0, 9, 2, 5, 9, 1])
    monkeypatch.setattr(labels, "_DENSE_BINS_PER_PIXEL", 0)
    monkeypatch.setattr(labels, "_DENSE_BINS_EXTRA", 0)
    assert compact(small, n_background=2).dense.tolist() == [1, 0, 3, 1, 2, 3, 0]
    no_background = compact(np.array([4, 4, 6]), n_background=1)
    assert no_background.dense.tolist() == [1, 1, 2]


def test_segments_of_an_instance_split_by_the_class_map():
    inst = np.array([[5, 5, 0], [5, 8, 8]])
    cls = np.array([[1, 2, 0], [2, 0, 3]])
    s = segments(inst, cls, num_classes=3)
    assert s.inst_ids.tolist() == [5, 8] and s.inst_area.tolist() == [3, 2]
    assert s.seg_cls.tolist() == [1, 2, 0, 3] and s.seg_inst.tolist() == [0, 0, 1, 1]
    assert s.splits
    assert majority_class(s).tolist() == [2, 3]  # 5: class 2 has two pixels; 8: class 0 loses to 3
    assert not segments(inst, None, 3).splits


def test_majority_vote_ties_go_to_the_smaller_class_and_unclassified_only_alone():
    inst = np.array([[1, 1, 2, 2, 3]])
    cls = np.array([[3, 2, 0, 0, 4]])
    assert majority_class(segments(inst, cls, 4)).tolist() == [2, 0, 4]


def test_overlap_dense_and_sparse_paths_agree(monkeypatch):
    rng = np.random.default_rng(0)
    t = rng.integers(0, 6, size=(20, 20))
    p = rng.integers(0, 9, size=(20, 20))
    a, b = compact(t.reshape(-1)), compact(p.reshape(-1))
    dense = overlap(a.dense, a.n, b.dense, b.n)
    monkeypatch.setattr(labels, "_DENSE_BINS_PER_PIXEL", 0)
    monkeypatch.setattr(labels, "_DENSE_BINS_EXTRA", 0)
    sparse = overlap(a.dense, a.n, b.dense, b.n)
    as_set = lambda o: set(zip(o.ti.tolist(), o.pj.tolist(), o.inter.tolist(), strict=True))  # noqa: E731
    assert as_set(dense) == as_set(sparse)
    for i, j, n in as_set(dense):
        assert n == np.sum((t == a.keys[i]) & (p == b.keys[j]))


def test_group_overlap_sums_segments_into_instances():
    inst = np.array([[1, 1, 2]])
    cls = np.array([[1, 2, 1]])
    ts, ps = segments(inst, cls, 2), segments(np.array([[4, 4, 4]]), np.array([[1, 1, 1]]), 2)
    seg_ov = overlap(ts.seg.dense, ts.n_seg, ps.seg.dense, ps.n_seg)
    inst_ov = group_overlap(seg_ov, ts.seg_inst, ps.seg_inst, ps.n_inst)
    assert sorted(zip(inst_ov.ti.tolist(), inst_ov.pj.tolist(), inst_ov.inter.tolist(), strict=True)) == [
        (0, 0, 2), (1, 0, 1)]  # fmt: skip


@pytest.mark.parametrize("force_fallback", [False, True])
def test_joint_table_gives_intersections_and_centroids(monkeypatch, force_fallback):
    rng = np.random.default_rng(1)
    true = rng.integers(0, 5, size=(31, 17)) * 3
    pred = rng.integers(0, 7, size=(31, 17))
    cls = rng.integers(0, 3, size=(31, 17))
    if force_fallback:
        monkeypatch.setattr(labels, "_packing", lambda shape: (0, 0, 0))
    ts, ps = segments(true, cls, 2), segments(pred, None, 0)
    table = joint(ts.seg, ps.seg, ts.shape)
    ref = overlap(ts.seg.dense, ts.n_seg, ps.seg.dense, ps.n_seg)
    assert np.array_equal(table.overlap.inter, ref.inter) and np.array_equal(table.overlap.ti, ref.ti)
    for s, sums, label_map in ((ts, table.true_sums, true), (ps, table.pred_sums, pred)):
        got = centroids(s, sums)
        for k, i in enumerate(s.inst_ids):
            rows, cols = np.nonzero(label_map == i)
            assert got[k].tolist() == [rows.mean(), cols.mean()]
    empty = segments(np.zeros((3, 3), int), None, 0)
    assert centroids(empty, joint(empty.seg, empty.seg, (3, 3)).true_sums).shape == (0, 2)


def test_packing_capacity_for_a_256_patch():
    cap, s1, s2 = labels._packing((256, 256))
    assert cap == 4095 and (cap * 255 + 1) << s2 <= 2**53 and s2 - s1 >= (cap * 255).bit_length()


def test_joint_falls_back_for_a_label_above_the_packing_capacity():
    big = np.zeros((256, 256), np.int64)
    big[:80, :80] = 1  # 6400 px > 4095
    big[100:103, 5:9] = 2
    s = segments(big, None, 0)
    table = joint(s.seg, s.seg, s.shape)
    assert centroids(s, table.true_sums).tolist() == [[39.5, 39.5], [101.0, 6.5]]
    assert table.overlap.inter.tolist() == [6400, 12]


def test_crop_presence_counts_pixels_in_the_central_window():
    inst = np.zeros((8, 8), np.int64)
    inst[0, 0] = 1  # only in the frame
    inst[1, 1:3] = 2  # one pixel inside the 6×6 window (rows/cols 1..6)
    inst[3:5, 3:5] = 3  # inside
    inst[7, 2:6] = 4  # bottom frame row only
    assert crop_presence(segments(inst, None, 0), 6).tolist() == [False, True, True, False]
    with pytest.raises(ValueError, match="larger"):
        crop_presence(segments(inst, None, 0), 9)
