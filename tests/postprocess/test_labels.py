from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import watershed

from cellprobe.errors import InputError
from cellprobe.postprocess.label_steps import check_maps, components, drop_small, fill_holes, flood


def test_fill_holes_leaves_border_background_and_large_holes():
    mask = np.zeros((12, 12), bool)
    mask[1:11, 1:11] = True
    mask[3, 3] = False  # 1-px hole
    mask[5:9, 5:9] = False  # 16-px hole
    mask[0:3, 9:12] = False  # notch open to the image border
    filled = fill_holes(mask, max_size=5)
    assert filled[3, 3] and not filled[5:9, 5:9].any() and not filled[0, 11]
    assert fill_holes(mask)[5:9, 5:9].all() and not fill_holes(mask)[0, 11]
    assert np.array_equal(fill_holes(mask, max_size=0), mask)


def test_drop_small_renumbers_in_id_order():
    labels = np.array([[5, 5, 0, 2], [5, 9, 9, 0]], np.int32)
    out = drop_small(labels, 2)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[1, 1, 0, 0], [1, 2, 2, 0]])


def test_components_are_four_connected():
    mask = np.array([[1, 0], [0, 1]], bool)
    assert components(mask).max() == 2


def test_flood_equals_a_plain_watershed_without_ties():
    rng = np.random.default_rng(0)
    relief = rng.random((64, 64))
    mask = rng.random((64, 64)) > 0.2
    markers = components(mask & (relief < 0.15))
    markers[~mask] = 0
    expected = watershed(relief, markers, mask=mask)
    np.testing.assert_array_equal(flood(relief, markers, mask), expected)


def test_check_maps_names_the_problem():
    with pytest.raises(InputError, match=r"distance must have shape \(4, H, W\)"):
        check_maps("distance", np.zeros((3, 8, 8)), 4)
    with pytest.raises(InputError, match="other maps"):
        check_maps("distance", np.zeros((4, 8, 8)), 4, (8, 9))
    with pytest.raises(InputError, match="numeric"):
        check_maps("x", np.zeros((8, 8), dtype=object), ndim=2)
