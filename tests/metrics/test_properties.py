"""Property tests (hypothesis) on small random label maps: agreement with the plain implementation,
PQ(x, x) = 1 up to the 1e-6 guards, invariance to ids, class maps that split instances, PanNuke/CoNIC agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cellprobe.metrics import score_conic, score_pannuke
from cellprobe.metrics.aggregate import conic_image_metrics
from cellprobe.metrics.image import conic_columns, conic_image_row

from . import plain

NUM_CLASSES = 3
RADIUS = 3.0
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


@st.composite
def maps(draw, shape=None, one_class_per_instance=False):
    """(inst, cls) of a small random image: ids 0..6 (instances may be fragmented), classes 0..3."""
    h, w = shape if shape is not None else (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    inst = draw(arrays(np.int64, (h, w), elements=st.integers(0, 6)))
    if one_class_per_instance:
        of_id = np.array(draw(st.lists(st.integers(1, NUM_CLASSES), min_size=7, max_size=7)))
        cls = of_id[inst] * (inst > 0)
    else:
        cls = draw(arrays(np.int64, (h, w), elements=st.integers(0, NUM_CLASSES)))
    return inst, cls


@st.composite
def pairs(draw, one_class_per_instance=False):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    return (*draw(maps((h, w), one_class_per_instance)), *draw(maps((h, w), one_class_per_instance)))


def _row(ti, tc, pi, pc):
    values = conic_image_row(ti, tc, pi, pc, num_classes=NUM_CLASSES, radius=RADIUS)
    return pd.Series(values, index=list(conic_columns(NUM_CLASSES, False)))


@SETTINGS
@given(pairs())
def test_row_matches_plain(p):
    ti, tc, pi, pc = p
    row = _row(ti, tc, pi, pc)
    for key, value in plain.image_row(ti, tc, pi, pc, NUM_CLASSES, RADIUS).items():
        assert abs(row[key] - value) <= 1e-12, key
    metrics = conic_image_metrics(row.to_frame().T).iloc[0]
    for name, ref in (("aji", plain.aji), ("aji_plus", plain.aji_plus), ("dice", plain.dice1), ("dice2", plain.dice2)):
        assert np.isclose(metrics[name], ref(ti, pi), rtol=0, atol=1e-12, equal_nan=True), name


@SETTINGS
@given(maps(one_class_per_instance=True))  # a valid truth: one class 1..C per instance
def test_pq_of_a_map_with_itself_is_one_up_to_the_guards(m):
    inst, cls = m
    n = len(np.unique(inst[inst > 0]))
    stack = np.stack([inst, cls], -1)[None]
    s = score_conic(stack, stack, num_classes=NUM_CLASSES).summary
    assert s["pq"] == ((n / (n + 1e-6)) ** 2 if n else 0.0)
    assert n == 0 or 1 - 2.1e-6 <= s["pq"] < 1
    assert n == 0 or (s["aji"] == s["aji_plus"] == s["dice"] == s["dice2"] == s["f1_detection"] == 1.0)


def _relabel(inst, new_ids):
    ids = np.unique(inst[inst > 0])
    lut = np.zeros(int(inst.max()) + 1, np.int64)
    lut[ids] = new_ids[: ids.size]
    return lut[inst]


ORDER_FREE = [c for c in conic_columns(NUM_CLASSES, False) if not c.startswith(("det_", "aji", "ajip"))]


@SETTINGS
@given(pairs(), st.randoms(use_true_random=False))
def test_invariance_to_ids(p, rnd):
    ti, tc, pi, pc = p
    ref = _row(ti, tc, pi, pc)
    # spread out, order kept: everything identical (ties in pairings break the same way)
    spread = _row(_relabel(ti, np.arange(1, 8) * 1000 + 7), tc, _relabel(pi, np.arange(1, 8) * 3 + 10**9), pc)
    assert spread.equals(ref)
    # any permutation: every count that does not depend on tie-breaking is identical
    perm_t, perm_p = list(range(1, 8)), list(range(50, 57))
    rnd.shuffle(perm_t)
    rnd.shuffle(perm_p)
    permuted = _row(_relabel(ti, np.array(perm_t)), tc, _relabel(pi, np.array(perm_p)), pc)
    assert np.allclose(permuted[ORDER_FREE], ref[ORDER_FREE], rtol=0, atol=1e-12)
    assert permuted.filter(like="det_").sum() == ref.filter(like="det_").sum()


@SETTINGS
@given(pairs(), arrays(np.int64, (12, 12), elements=st.integers(0, NUM_CLASSES)))
def test_binary_statistics_ignore_the_class_map(p, other):
    ti, tc, pi, pc = p
    h, w = ti.shape
    binary = ["n_true", "n_pred", "tp", "fp", "fn", "iou_sum", *[c for c in ORDER_FREE if c.startswith("dice")]]
    assert _row(ti, tc, pi, pc)[binary].equals(_row(ti, other[:h, :w], pi, pc)[binary])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.lists(pairs(one_class_per_instance=True), min_size=1, max_size=4))
def test_pannuke_and_conic_agree_with_one_class_per_instance(images):
    shape = images[0][0].shape
    images = [im for im in images if im[0].shape == shape]
    true = np.stack([np.stack(im[:2], -1) for im in images])
    pred = np.stack([np.stack(im[2:], -1) for im in images])

    def to_masks(labels):
        masks = np.zeros((*labels.shape[:3], NUM_CLASSES + 1))
        for c in range(1, NUM_CLASSES + 1):
            masks[..., c - 1] = labels[..., 0] * (labels[..., 1] == c)
        return masks

    pannuke = score_pannuke(to_masks(true), to_masks(pred), ["t"] * len(images)).per_image
    conic = score_conic(true, pred, num_classes=NUM_CLASSES).per_image
    stats = [c for c in pannuke.columns if c.split("_c")[0] in ("n_true", "n_pred", "tp", "fp", "fn", "iou_sum")]
    assert np.allclose(pannuke[stats].to_numpy(float), conic[stats].to_numpy(float), rtol=0, atol=1e-12)
    bpq = pannuke["bpq"].to_numpy()
    has_truth = conic["n_true"].to_numpy() > 0
    assert np.isnan(bpq[~has_truth]).all()
    assert np.allclose(bpq[has_truth], conic["pq"].to_numpy()[has_truth], rtol=2e-6, atol=0)
