"""Distance-map watershed: synthetic cases, degraded maps, and the oracle on the real CoNSeP test patches."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cellprobe.data.targets import make_targets
from cellprobe.errors import InputError
from cellprobe.metrics import score_maps
from cellprobe.postprocess import PostprocessParams, contour_strength, instances_from_maps

from .oracle import degrade, discs, one_hot, oracle_maps


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to renumbering."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_touching_discs_are_recovered_exactly():
    inst = discs()
    semantic, distance, _, _ = oracle_maps(inst, (inst > 0).astype(np.uint8))
    out = instances_from_maps(semantic, distance)
    assert out.dtype == np.int32 and out.max() == 3
    assert same_partition(out, inst)


def test_contour_strength_marks_cell_borders_only():
    inst = discs()
    t = make_targets(inst, (inst > 0).astype(np.uint8))
    c = contour_strength(t.distance)
    border = (inst[:, :-1] != inst[:, 1:]) & (inst[:, :-1] > 0) & (inst[:, 1:] > 0)
    rows, cols = np.nonzero(border)
    assert (c[rows, cols] > 0.6).all() and (c[rows, cols + 1] > 0.6).all()
    interior = ndi.binary_erosion(inst == 3, iterations=2)
    assert (c[interior] == 0).all()


def test_body_only_semantic_without_distance_contours_merges_but_contours_split():
    """Two cells whose boundary band is missing from the semantic map are still split by the distance maps."""
    inst = discs()
    t = make_targets(inst, (inst > 0).astype(np.uint8))
    semantic = one_hot(np.where(inst > 0, 2, 0), 3)  # no boundary class at all
    split = instances_from_maps(semantic, t.distance)
    assert split.max() == 3
    merged = instances_from_maps(semantic, np.zeros_like(t.distance))
    assert merged.max() == 2


def test_thresholds_small_objects_and_holes():
    inst = discs()
    inst[2:4, 2:4] = 9  # a 4-px speck
    semantic, distance, _, _ = oracle_maps(inst, (inst > 0).astype(np.uint8))
    assert instances_from_maps(semantic, distance, PostprocessParams(min_size=3)).max() == 4
    assert instances_from_maps(semantic, distance, PostprocessParams(min_size=5)).max() == 3
    holed = semantic.copy()
    holed[:, 45, 40] = [1, 0, 0]  # a background pixel inside cell 3
    out = instances_from_maps(holed, distance)
    assert out[45, 40] == out[45, 41] > 0
    out = instances_from_maps(holed, distance, PostprocessParams(max_hole_size=0))
    assert out[45, 40] == 0


def test_empty_and_bad_inputs():
    empty = instances_from_maps(one_hot(np.zeros((16, 16), int), 3), np.zeros((4, 16, 16)))
    assert empty.shape == (16, 16) and not empty.any()
    with pytest.raises(InputError, match="semantic_prob"):
        instances_from_maps(np.zeros((2, 16, 16)), np.zeros((4, 16, 16)))
    with pytest.raises(InputError, match="distance"):
        instances_from_maps(np.zeros((3, 16, 16)), np.zeros((4, 16, 17)))


def oracle_pq(inst: np.ndarray, cls: np.ndarray, noisy: bool = False) -> float:
    rng = np.random.default_rng(0)
    preds = []
    for i in range(len(inst)):
        semantic, distance, _, _ = oracle_maps(inst[i], cls[i])
        if noisy:
            semantic, distance = degrade(semantic, distance, rng)
        preds.append(instances_from_maps(semantic, distance))
    result = score_maps(list(inst), list(cls), preds, [(p > 0).astype(np.uint8) for p in preds], num_classes=4)
    return result.summary["pq"]


def test_oracle_on_consep_subset(consep_test):
    inst, cls = consep_test
    assert oracle_pq(inst[::8], cls[::8]) >= 0.97


def test_degraded_maps_on_consep_subset(consep_test):
    """Blurred, noisy maps (as a decoder gives) still separate the nuclei with the default thresholds."""
    inst, cls = consep_test
    assert oracle_pq(inst[::16], cls[::16], noisy=True) >= 0.93  # 0.98 measured


@pytest.mark.slow
def test_oracle_on_all_consep_test_patches(consep_test):
    """Issue 5: ground-truth targets → post-processing → PQ >= 0.97 on the 224 CoNSeP test patches."""
    inst, cls = consep_test
    pq = oracle_pq(inst, cls)
    print(f"oracle PQ on {len(inst)} CoNSeP test patches: {pq:.4f}")
    assert pq >= 0.97
