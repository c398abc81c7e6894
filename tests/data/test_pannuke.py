from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellprobe.data import open_dataset
from cellprobe.data.pannuke import PanNukeDataset, fold_paths, masks_to_maps
from cellprobe.errors import InputError


def test_reads_release_layout(pannuke_root):
    ds = open_dataset(pannuke_root)
    assert isinstance(ds, PanNukeDataset) and len(ds) == 9 and ds.num_classes == 5 and ds.mpp == 0.25
    s = ds[5]
    assert s.image.dtype == np.uint8 and s.inst.dtype == np.int32 and s.meta.name == "fold2_0001"
    assert s.meta.tissue in {"Breast", "Colon", "Kidney", "Liver"}
    masks = np.load(fold_paths(pannuke_root, 2)[2])[1]
    images = np.load(fold_paths(pannuke_root, 2)[0])[1]
    assert np.array_equal(s.image, images.astype(np.uint8))
    for c in range(5):  # every channel's instances come back with their class, ids only shifted
        on = masks[..., c] > 0
        assert np.all(s.cls[on] == c + 1)
        assert len(np.unique(s.inst[on])) == len(np.unique(masks[..., c][on]))
    assert np.all((s.inst > 0) == masks[..., :5].any(-1))


def test_arrays_are_memory_mapped(pannuke_root):
    ds = open_dataset(pannuke_root, split="fold1")
    assert isinstance(ds.folds[0].images, np.memmap) and isinstance(ds.folds[0].masks, np.memmap)


@pytest.mark.parametrize(("protocol", "expected"), [(1, (1, 2, 3)), (2, (2, 1, 3)), (3, (3, 2, 1))])
def test_three_fold_protocol(pannuke_root, protocol, expected):
    sizes = {1: 4, 2: 3, 3: 2}
    for split, fold in zip(("train", "val", "test"), expected, strict=True):
        ds = open_dataset(pannuke_root, "pannuke", split, protocol=protocol)
        assert len(ds) == sizes[fold] and ds[0].meta.extra["fold"] == str(fold)


def test_missing_fold_and_bad_options(pannuke_root):
    import shutil

    shutil.rmtree(pannuke_root / "Fold 3")
    with pytest.warns(UserWarning, match="Fold 3 of the release missing"):
        assert len(open_dataset(pannuke_root)) == 7
    with pytest.raises(InputError, match="PanNuke fold 3 is missing"):
        open_dataset(pannuke_root, split="test")
    for protocol in (4, 3.0, True):  # an integer choice: neither a float nor a boolean is a protocol
        with pytest.raises(InputError, match="protocol"):
            open_dataset(pannuke_root, split="train", protocol=protocol)
    with pytest.raises(InputError, match="unknown PanNuke split"):
        open_dataset(pannuke_root, split="fold9")


def test_mismatched_counts(pannuke_root):
    np.save(fold_paths(pannuke_root, 1)[1], np.array(["Breast"] * 3))
    with pytest.raises(InputError, match=r"mismatched counts: images.npy 4, masks.npy 4, types.npy 3"):
        open_dataset(pannuke_root, split="fold1")


def test_non_integer_mask_names_sample(pannuke_root):
    path = fold_paths(pannuke_root, 1)[2]
    masks = np.load(path)
    masks[2, 0, 0, 1] = 0.5
    np.save(path, masks)
    ds = open_dataset(pannuke_root, split="fold1")
    ds[1]
    with pytest.raises(InputError, match=r"masks\.npy\[2\]: mask values hold non-integer"):
        ds[2]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=64, max_size=64), st.lists(st.integers(1, 6), min_size=64, max_size=64))
def test_masks_to_maps_keeps_instances(channel_of_pixel, id_of_pixel):
    """Each (channel, id) pair becomes exactly one instance of class channel+1; no pair is merged."""
    masks = np.zeros((8, 8, 6))
    ch = np.array(channel_of_pixel).reshape(8, 8)
    ids = np.array(id_of_pixel).reshape(8, 8)
    on = ch > 0
    for c in range(1, 5):
        masks[..., c][ch == c] = ids[ch == c]
    inst, cls = masks_to_maps(masks, "m")
    pairs = {(int(c), int(i)) for c, i in zip(ch[on], ids[on], strict=True) if c}
    assert len(np.unique(inst[inst > 0])) == len(pairs)
    assert np.array_equal(cls, np.where(on, ch + 1, 0))


def test_overlapping_channels_refused():
    masks = np.zeros((4, 4, 6))
    masks[0, 0, 0] = 1
    masks[0, 0, 2] = 1
    with pytest.raises(InputError, match="several class channels"):
        masks_to_maps(masks, "masks.npy[0]")


def test_a_fold_array_linking_outside_the_dataset_is_refused(pannuke_root, tmp_path):
    """As for every layout: a file of the dataset that is a link leading outside its folder is refused (link the
    whole dataset folder instead)."""
    from cellprobe.data.pannuke import fold_paths

    images = fold_paths(pannuke_root, 1)[0]
    outside = tmp_path / "outside.npy"
    images.rename(outside)
    images.symlink_to(outside)
    with pytest.raises(InputError, match="link leading outside the dataset folder") as err:
        open_dataset(pannuke_root, split="fold1")[0]
    assert str(images) in str(err.value)
