from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellprobe.data import open_dataset
from cellprobe.data.conic import ConicDataset
from cellprobe.errors import InputError


def test_conic_built_from_real_consep_patches(conic_from_consep, consep_root):
    ds = open_dataset(conic_from_consep)
    assert isinstance(ds, ConicDataset) and len(ds) == 432 and ds.num_classes == 6
    assert sum(len(np.unique(ds[i].inst)) - 1 for i in range(len(ds))) == 18216
    assert len(set(ds.sources())) == 27
    with np.load(consep_root / "train" / "labels.npz") as z:
        assert np.array_equal(ds[17].inst, z["inst"][17]) and np.array_equal(ds[17].cls, z["cls"][17])


def test_splits_by_source_never_share_an_image(conic_from_consep):
    train = open_dataset(conic_from_consep, split="train", val_fraction=0.25, seed=3)
    val = open_dataset(conic_from_consep, split="val", val_fraction=0.25, seed=3)
    assert len(train) + len(val) == 432
    assert not set(train.sources()) & set(val.sources())
    again = open_dataset(conic_from_consep, split="val", val_fraction=0.25, seed=3)
    assert again.sources() == val.sources()


def test_kfold_and_split_file(conic_root, tmp_path):
    folds = [open_dataset(conic_root, split="test", kfold=3, fold=k) for k in range(3)]
    assert sorted(s for f in folds for s in f.sources()) == sorted(open_dataset(conic_root).sources())
    split_file = tmp_path / "split.csv"
    split_file.write_text("patch,fold\nsrc0-0000,a\nsrc0-0001,a\nsrc1-0002,b\n")
    with pytest.raises(InputError, match=r"3 of the dataset's 6 patches are in no fold \(e\.g\. 'src1-0003'\)"):
        open_dataset(conic_root, split="b", split_file=split_file)
    split_file.write_text("patch,fold\nsrc0-0000,a\nsrc0-0001,a\nsrc1-0002,b\n"
                          "src1-0003,b\nsrc2-0004,unused\nsrc2-0005,unused\n")  # a source is in one fold only
    ds = open_dataset(conic_root, split="b", split_file=split_file)
    assert [ds[i].meta.name for i in range(len(ds))] == ds.names() == ["src1-0002", "src1-0003"]
    assert ds.repeats() is None
    with pytest.raises(InputError, match="fold 'c' is missing"):
        open_dataset(conic_root, split="c", split_file=split_file)
    with pytest.raises(InputError, match="no 'test' split is released"):
        open_dataset(conic_root, split="test")


def test_bad_release_files(conic_root):
    labels = np.load(conic_root / "labels.npy")
    np.save(conic_root / "labels.npy", labels[:5])
    with pytest.raises(InputError, match=r"mismatched counts: images.npy 6, labels.npy 5"):
        open_dataset(conic_root)
    labels[3, 0, 0, 0] = 99  # a pixel of instance 99 with background class
    labels[3, 0, 0, 1] = 0
    np.save(conic_root / "labels.npy", labels)
    ds = open_dataset(conic_root)
    with pytest.raises(InputError, match=r"labels\.npy\[3\]: instance ids do not match the class map"):
        ds[3]
    np.save(conic_root / "labels.npy", labels.astype(np.float32))
    with pytest.raises(InputError, match=r"labels\.npy\[0\]: instance ids are float"):
        open_dataset(conic_root)[0]
    (conic_root / "patch_info.csv").write_text("name\nx\n")
    with pytest.raises(InputError, match="patch_info"):
        open_dataset(conic_root)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 5), st.integers(0, 10_000), st.sampled_from([np.uint16, np.int32, np.uint8]))
def test_round_trip_property(n, seed, dtype):
    """Whatever valid arrays are written in the release layout come back identical, as int32/uint8."""
    import tempfile
    from pathlib import Path

    from cellprobe.data import fixtures

    images, inst, cls = fixtures.synthetic_set(n, seed=seed, size=32, n_nuclei=4)
    with tempfile.TemporaryDirectory() as tmp:
        root = fixtures.write_conic(Path(tmp), images, inst, cls, [f"s{i % 2}-{i}" for i in range(n)], dtype)
        ds = open_dataset(root)
        for i in range(n):
            s = ds[i]
            assert np.array_equal(s.image, images[i]) and np.array_equal(s.inst, inst[i])
            assert np.array_equal(s.cls, cls[i]) and s.inst.dtype == np.int32 and s.cls.dtype == np.uint8
