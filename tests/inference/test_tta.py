"""Dihedral test-time augmentation: the distance-channel remapping matches the targets' definition, an
equivariant network is unchanged by it, and a trained run accepts it end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.training.tiny import shared_data, shared_run

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.targets import make_targets
from cellprobe.data.views import apply_view, invert_view, view_array
from cellprobe.inference.segmenter import Segmenter
from cellprobe.inference.tta import dihedral_tta, distance_channel_map, unview_outputs


def _labels(seed: int = 0, size: int = 48):
    _, inst, cls = fixtures.synthetic_patch(np.random.default_rng(seed), size, n_nuclei=8)
    return inst[:, : size - 8].copy(), cls[:, : size - 8].copy()  # not square: turns change the shape


@pytest.mark.parametrize("view", range(8))
def test_distance_channels_of_a_view_come_back_as_the_originals(view):
    inst, cls = _labels(view)
    original = make_targets(inst, cls).distance
    viewed = make_targets(apply_view(inst, view), apply_view(cls, view)).distance
    back = np.stack([invert_view(ch, view) for ch in viewed])
    source, sign = distance_channel_map(view)
    np.testing.assert_allclose(back[list(source)] * np.asarray(sign)[:, None, None], original, atol=1e-6)


def test_channel_maps_are_signed_permutations():
    assert distance_channel_map(0) == ((0, 1, 2, 3), (1.0, 1.0, 1.0, 1.0))
    for view in range(8):
        source, sign = distance_channel_map(view)
        assert sorted(source) == [0, 1, 2, 3] and set(sign) <= {1.0, -1.0}


def _oracle(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """An equivariant 'network': reads the instance ids stored in channel 0 and returns their exact targets."""
    sem, dist, types = [], [], []
    for img in batch:
        inst = np.rint(img[0].numpy() * 255).astype(np.int32)
        t = make_targets(inst, (inst > 0).astype(np.uint8))
        sem.append(np.log(np.eye(3, dtype=np.float32)[t.semantic].transpose(2, 0, 1) * 0.9 + 0.05))
        types.append(np.log(np.eye(2, dtype=np.float32)[t.cls].transpose(2, 0, 1) * 0.9 + 0.05))
        dist.append(t.distance)
    return {k: torch.from_numpy(np.stack(v)) for k, v in (("semantic", sem), ("distance", dist), ("types", types))}


def test_an_equivariant_network_is_unchanged_by_tta():
    inst = np.stack([_labels(s)[0] for s in range(2)])
    batch = torch.zeros(2, 3, *inst.shape[1:])
    batch[:, 0] = torch.from_numpy(inst.astype(np.float32) / 255)
    plain = _oracle(batch)
    averaged = dihedral_tta(_oracle, 8)(batch)
    for key in ("semantic", "types"):
        torch.testing.assert_close(averaged[key].softmax(1), plain[key].softmax(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(averaged["distance"], plain["distance"], atol=1e-5, rtol=0)


def test_unview_is_the_inverse_spatially():
    x = torch.rand(1, 3, 64, 32)
    for view in range(8):
        back = unview_outputs({"semantic": view_array(x, view)}, view)["semantic"]
        torch.testing.assert_close(back, x)


def test_views_out_of_range():
    with pytest.raises(ValueError, match=r"1\.\.8"):
        dihedral_tta(_oracle, 9)


def test_segmenter_with_tta(tmp_path_factory):
    run = shared_run(tmp_path_factory)
    ds = open_dataset(shared_data(), format="patches", split="test")
    image = ds[0].image
    plain, tta = Segmenter(run, device="cpu").maps(image), Segmenter(run, device="cpu", tta=8).maps(image)
    assert tta["semantic"].shape == plain["semantic"].shape
    np.testing.assert_allclose(tta["semantic"].sum(0), 1.0, atol=1e-5)
    assert not np.allclose(tta["semantic"], plain["semantic"])  # a trained CNN is not exactly equivariant
    one = Segmenter(run, device="cpu", tta=1).maps(image)
    np.testing.assert_array_equal(one["semantic"], plain["semantic"])
