"""Dihedral views: the convention shared by augmentation, the feature cache and cached training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cellprobe.data.views import view_array as apply_view


def test_view_convention():
    a = np.array([[1, 2], [3, 4]])
    assert apply_view(a, 0).tolist() == [[1, 2], [3, 4]]
    assert apply_view(a, 1).tolist() == [[2, 4], [1, 3]]  # one counter-clockwise quarter turn
    assert apply_view(a, 4).tolist() == [[2, 1], [4, 3]]  # horizontal flip
    assert apply_view(a, 5).tolist() == [[4, 2], [3, 1]]  # turn, then flip
    assert len({apply_view(a, v).tobytes() for v in range(8)}) == 8


@pytest.mark.parametrize("view", range(8))
def test_numpy_torch_and_layouts_agree(view):
    rng = np.random.default_rng(view)
    hwc = rng.integers(0, 255, (4, 6, 3))
    chw = torch.from_numpy(hwc).permute(2, 0, 1)
    want = np.rot90(hwc, view % 4, axes=(0, 1))
    want = want[:, ::-1] if view >= 4 else want
    assert np.array_equal(apply_view(hwc, view, channels_last=True), want)
    assert np.array_equal(apply_view(chw, view).permute(1, 2, 0).numpy(), want)
    assert np.array_equal(apply_view(hwc[..., 0], view), want[..., 0])


def test_bad_view():
    with pytest.raises(ValueError, match=r"0\.\.7"):
        apply_view(np.zeros((2, 2)), 8)
