"""Training targets: hand-checked examples, property tests against plain per-cell loops, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellprobe.data.targets import (
    BACKGROUND,
    BODY,
    BOUNDARY,
    DIRECTIONS,
    TargetConfig,
    compact_ids,
    make_targets,
)
from cellprobe.errors import InputError

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def two_touching() -> np.ndarray:
    """Cell 7 (rows 2..5, cols 1..4) touching cell 3 (rows 2..5, cols 5..9) on a 8×12 patch."""
    inst = np.zeros((8, 12), np.int32)
    inst[2:6, 1:5] = 7
    inst[2:6, 5:10] = 3
    return inst


def test_touching_cells_hand_checked():
    inst = two_touching()
    t = make_targets(inst, (inst > 0).astype(np.uint8) * 2, TargetConfig(boundary_radius=1))
    expected = np.where(inst > 0, BODY, BACKGROUND)
    expected[2:6, 4:6] = BOUNDARY  # the column on each side of the shared border
    np.testing.assert_array_equal(t.semantic, expected)
    # horizontal map: -1 at each cell's first column, +1 at its last, linear in between
    np.testing.assert_allclose(t.distance[0, 3, 1:5], [-1, -1 / 3, 1 / 3, 1], atol=1e-6)
    np.testing.assert_allclose(t.distance[0, 3, 5:10], [-1, -0.5, 0, 0.5, 1], atol=1e-6)
    # vertical map: rows 2..5 of both cells
    np.testing.assert_allclose(t.distance[1, 2:6, 2], [-1, -1 / 3, 1 / 3, 1], atol=1e-6)
    # diagonal ↘ on cell 7: r + c from 3 (top-left) to 9 (bottom-right)
    assert t.distance[2, 2, 1] == -1 and t.distance[2, 5, 4] == 1
    # anti-diagonal ↗ on cell 7: c - r from -4 (bottom-left) to 2 (top-right)
    assert t.distance[3, 5, 1] == -1 and t.distance[3, 2, 4] == 1
    assert np.all(t.distance[:, inst == 0] == 0) and np.all(t.hv[:, inst == 0] == 0)
    # hv: cell 7's centroid column is 2.5: offsets -1.5, -0.5, 0.5, 1.5 → -1, -1/3, 1/3, 1
    np.testing.assert_allclose(t.hv[0, 3, 1:5], [-1, -1 / 3, 1 / 3, 1], atol=1e-6)
    assert t.cls.dtype == np.int64 and np.array_equal(t.cls, np.where(inst > 0, 2, 0))


def test_boundary_radius_widens_the_band_and_isolated_cells_have_none():
    inst = two_touching()
    inst[7, 11] = 5  # a lone single pixel far away
    narrow = make_targets(inst, (inst > 0).astype(np.uint8), TargetConfig(boundary_radius=1)).semantic
    wide = make_targets(inst, (inst > 0).astype(np.uint8), TargetConfig(boundary_radius=2)).semantic
    assert (wide == BOUNDARY).sum() > (narrow == BOUNDARY).sum()
    assert np.all(wide[2:6, 3:7] == BOUNDARY)
    assert narrow[7, 11] == BODY


def test_thin_cells_get_zero_along_their_thin_direction():
    inst = np.zeros((5, 6), np.int32)
    inst[2, 1:5] = 4  # one row: no vertical extent
    t = make_targets(inst, np.zeros_like(inst))
    assert np.all(t.distance[1, 2, 1:5] == 0)
    np.testing.assert_allclose(t.distance[0, 2, 1:5], [-1, -1 / 3, 1 / 3, 1], atol=1e-6)
    assert np.all(t.hv[1, 2, 1:5] == 0)


def test_empty_patch():
    t = make_targets(np.zeros((16, 16), np.int32), np.zeros((16, 16), np.uint8))
    assert not t.semantic.any() and not t.distance.any() and not t.hv.any() and not t.cls.any()
    assert t.distance.shape == (4, 16, 16) and t.hv.shape == (2, 16, 16)
    assert t.distance.dtype == np.float32 and t.semantic.dtype == np.uint8


def test_compact_ids_huge_and_sparse():
    ids = np.array([9_000_000_000, 5, 5, 70, 9_000_000_000], np.int64)
    lab, k = compact_ids(ids)
    assert k == 3 and lab.tolist() == [3, 1, 1, 2, 3]
    lab, k = compact_ids(np.array([12, 3, 12]))
    assert k == 2 and lab.tolist() == [2, 1, 2]


@pytest.mark.parametrize(
    ("inst", "cls", "problem"),
    [
        (np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8), "instance map must hold integers"),
        (np.full((4, 4), -1, np.int32), np.zeros((4, 4), np.uint8), "negative"),
        (np.zeros((4, 4), np.int32), np.zeros((4, 5), np.uint8), "differs"),
        (np.zeros((2, 4, 4), np.int32), np.zeros((2, 4, 4), np.uint8), "2-D"),
        (np.zeros((4, 4), np.int32), np.full((4, 4), 1.5), "class map must hold integers"),
    ],
)
def test_bad_input(inst, cls, problem):
    with pytest.raises(InputError, match=problem) as err:
        make_targets(inst, cls, where="labels.npz[3]")
    assert str(err.value).startswith("labels.npz[3]: ")


# ---------------------------------------------------------------- property tests against plain loops


@st.composite
def label_maps(draw):
    """Small instance maps of overlapping random rectangles and discs, with arbitrary (large, sparse) ids."""
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    inst = np.zeros((h, w), np.int64)
    rows, cols = np.indices((h, w))
    for _ in range(draw(st.integers(0, 8))):
        r, c = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        size = draw(st.integers(0, 6))
        ident = draw(st.sampled_from([1, 2, 3, 17, 255, 1000, 65_537, 2**31 - 1]))
        if draw(st.booleans()):
            shape = (abs(rows - r) <= size) & (abs(cols - c) <= draw(st.integers(0, 6)))
        else:
            shape = (rows - r) ** 2 + (cols - c) ** 2 <= size**2
        inst[shape] = ident
    cls = (inst % 5).astype(np.uint8)
    return inst, cls


def plain_targets(inst: np.ndarray, radius: int):
    """Reference: one cell at a time, with explicit loops over offsets."""
    h, w = inst.shape
    semantic = np.where(inst > 0, BODY, BACKGROUND)
    distance = np.zeros((4, h, w))
    rows, cols = np.indices((h, w))
    for ident in np.unique(inst[inst > 0]):
        m = inst == ident
        for ch, (dr, dc) in enumerate(DIRECTIONS):
            p = (dr * rows + dc * cols)[m]
            span = p.max() - p.min()
            distance[ch][m] = 2 * (p - p.min()) / span - 1 if span else 0
    for r, c in zip(*np.nonzero(inst), strict=True):
        for dr in range(-radius, radius + 1):
            for dc in range(-radius, radius + 1):
                rr, cc = r + dr, c + dc
                if dr * dr + dc * dc <= radius * radius and 0 <= rr < h and 0 <= cc < w:
                    if inst[rr, cc] not in (0, inst[r, c]):
                        semantic[r, c] = BOUNDARY
    return semantic, distance


@SETTINGS
@given(label_maps(), st.integers(1, 3))
def test_matches_plain_reference(maps, radius):
    inst, cls = maps
    t = make_targets(inst, cls, TargetConfig(boundary_radius=radius))
    semantic, distance = plain_targets(inst, radius)
    np.testing.assert_array_equal(t.semantic, semantic)
    np.testing.assert_allclose(t.distance, distance, atol=1e-5)
    assert np.array_equal(t.cls, np.where(inst > 0, cls, 0))


@SETTINGS
@given(label_maps())
def test_ranges_and_per_cell_normalisation(maps):
    inst, cls = maps
    t = make_targets(inst, cls)
    assert t.distance.min() >= -1 and t.distance.max() <= 1 and t.hv.min() >= -1 and t.hv.max() <= 1
    assert np.array_equal(t.semantic > 0, inst > 0)
    for ident in np.unique(inst[inst > 0]):
        m = inst == ident
        for values in (*t.distance, *t.hv):
            v = values[m]
            # each map spans exactly [-1, 1] in a cell, or is 0 where the cell has no extent along it
            assert (v.min() == -1 and v.max() == 1) or not v.any()


@SETTINGS
@given(label_maps(), st.randoms(use_true_random=False))
def test_invariant_to_id_permutation(maps, rnd):
    inst, cls = maps
    ids = np.unique(inst[inst > 0])
    new = np.array(rnd.sample(range(1, 10**6), len(ids)), np.int64)
    relabelled = np.zeros_like(inst)
    for old, nid in zip(ids, new, strict=True):
        relabelled[inst == old] = nid
    a, b = make_targets(inst, cls), make_targets(relabelled, cls)
    for field in ("semantic", "distance", "cls", "hv"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_real_consep_patches(consep_root):
    z = np.load(consep_root / "test" / "labels.npz")
    for i in (0, 100, 223):
        inst, cls = z["inst"][i], z["cls"][i]
        t = make_targets(inst, cls)
        assert np.array_equal(t.semantic > 0, inst > 0)
        assert (t.semantic == BOUNDARY).any()  # CoNSeP nuclei touch
        assert np.array_equal(t.cls, cls.astype(np.int64))
