"""CoNSeP (.mat), MoNuSeg (TIFF + XML), CytoDArk0 (PNG + TIFF + folds) and user folders."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.base import tile_starts
from cellprobe.errors import InputError


def test_tile_starts_cover_the_image():
    assert tile_starts(1000, 256, 256) == [0, 256, 512, 744]
    assert tile_starts(256, 256, 256) == [0]
    assert tile_starts(600, 256, 128) == [0, 128, 256, 344]


def test_consep_mat_merges_classes(tmp_path):
    root = fixtures.write_consep(tmp_path, {"train": 2, "test": 1}, size=300)
    ds = open_dataset(root, split="train")
    assert ds.class_names == ("other", "inflammatory", "epithelial", "spindle-shaped") and len(ds) == 2
    mat = scipy.io.loadmat(root / "CoNSeP" / "Train" / "Labels" / "train_1.mat")
    s = ds[0]
    merge = np.array([0, 1, 2, 3, 3, 4, 4, 4])
    assert np.array_equal(s.cls, merge[mat["type_map"].astype(int)])
    assert np.array_equal(s.inst, mat["inst_map"].astype(np.int32))
    raw7 = open_dataset(root, split="train", merge_classes=False)
    assert raw7.num_classes == 7 and np.array_equal(raw7[0].cls, mat["type_map"].astype(np.uint8))
    tiles = open_dataset(root, split="test", crop="tiled", crop_size=256)
    assert len(tiles) == 4 and tiles[3].meta.name == "test_1_y44_x44" and tiles[3].image.shape == (256, 256, 3)


def test_consep_missing_split_and_bad_type_map(tmp_path):
    root = fixtures.write_consep(tmp_path, {"train": 1}, size=64)
    with pytest.raises(InputError, match="CoNSeP split 'test' is missing"):
        open_dataset(root, split="test")
    path = root / "CoNSeP" / "Train" / "Labels" / "train_1.mat"
    mat = scipy.io.loadmat(path)
    mat["type_map"][0, 0] = 9
    scipy.io.savemat(path, {k: v for k, v in mat.items() if not k.startswith("__")})
    with pytest.raises(InputError, match=r"type_map value 9 outside 0..7"):
        open_dataset(root, split="train")[0]


def test_monuseg_outlines_rasterised(tmp_path):
    root = fixtures.write_monuseg(tmp_path, {"train": 2, "test": 1}, size=200, n_nuclei=5)
    train, test = open_dataset(root, split="train"), open_dataset(root, split="test")
    assert (len(train), len(test)) == (2, 1) and train.class_names == ("nucleus",)
    s = test[0]
    assert s.inst.max() <= 5 and 0.01 < (s.inst > 0).mean() < 0.5 and set(np.unique(s.cls)) <= {0, 1}


def test_monuseg_overlap_warns(tmp_path):
    root = tmp_path / "MoNuSegTestData"
    root.mkdir()
    fixtures._save_tiff(root / "a.tif", np.zeros((50, 50, 3), np.uint8))
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], float)
    big = np.array([[5, 5], [35, 5], [35, 35], [5, 35]], float)
    (root / "a.xml").write_text(fixtures.aperio_xml([square, big, square + 12]))
    ds = open_dataset(tmp_path, split="test")
    with pytest.warns(UserWarning, match="1 of 3 outlines have no pixel left"):
        s = ds[0]
    assert set(np.unique(s.inst)) == {0, 2, 3}
    (root / "a.xml").write_text("<Annotations><Region>")
    with pytest.raises(InputError, match=r"a\.xml: unreadable annotation XML"):
        open_dataset(tmp_path, split="test")[0]


def test_cytodark0_folds_and_crops(tmp_path):
    root = fixtures.write_cytodark0(tmp_path, [0, 1, 2, 0], size=512)
    train = open_dataset(root, split="train")
    assert train.class_names == ("cell",) and len(train) == 2 * 4 and train.mpp == 0.5
    assert len(set(train.sources())) == 2 and train[0].meta.tissue == "brain"
    assert len(open_dataset(root, split="fold2")) == 4
    rnd = open_dataset(root, split="fold0", crop="random", crops_per_image=3, seed=4)
    again = open_dataset(root, split="fold0", crop="random", crops_per_image=3, seed=4)
    assert len(rnd) == 6 and [rnd[i].meta.name for i in range(6)] == [again[i].meta.name for i in range(6)]
    with pytest.raises(InputError, match="fold 5 is missing"):
        open_dataset(root, split="fold5")
    with pytest.raises(InputError, match="no CytoDArk0 layout for 40x"):
        open_dataset(root, split="train", magnification="40x")


def test_cytodark0_unlisted_and_missing_files(tmp_path):
    root = fixtures.write_cytodark0(tmp_path, [0, 1], size=256)
    base = root / "cytoDArk0" / "20x" / "1024x1024"
    (base / "image" / "extra.png").write_bytes((base / "image" / "species0_region0.png").read_bytes())
    with pytest.warns(UserWarning, match=r"1 images not in folds.csv .* are left out"):
        open_dataset(root)
    (base / "label" / "species1_region1.tiff").unlink()
    with pytest.raises(InputError, match=r"missing file of an image listed in folds.csv"):
        open_dataset(root)


def test_folder_format(tmp_path, synth):
    images, inst, cls = synth
    names = [f"img{i}" for i in range(6)]
    root = fixtures.write_folder(tmp_path / "mine", images, inst, cls, names, class_names=["a", "b", "c", "d"],
                                 sources=[f"slide{i // 2}" for i in range(6)])
    ds = open_dataset(root)
    assert len(ds) == 6 and ds.class_names == ("a", "b", "c", "d") and ds[4].meta.source == "slide2"
    assert np.array_equal(ds[2].inst, inst[2]) and np.array_equal(ds[2].cls, cls[2])
    val = open_dataset(root, split="val", val_fraction=0.3, seed=1)
    train = open_dataset(root, split="train", val_fraction=0.3, seed=1)
    assert not set(val.sources()) & set(train.sources()) and len(val) + len(train) == 6
    (root / "dataset.yaml").unlink()
    with pytest.raises(InputError, match="class maps given without class names"):
        open_dataset(root)


def test_folder_without_class_maps_and_with_split_folders(tmp_path, synth):
    images, inst, _ = synth
    fixtures.write_folder(tmp_path / "d" / "train", images[:4], inst[:4], None, ["a", "b", "c", "d"])
    fixtures.write_folder(tmp_path / "d" / "test", images[4:], inst[4:], None, ["e", "f"])
    ds = open_dataset(tmp_path / "d", split="test")
    assert len(ds) == 2 and ds.class_names == ("cell",) and np.array_equal(ds[0].cls, (inst[4] > 0).astype(np.uint8))
    with pytest.raises(InputError, match=r"holds split folders \(test, train\): choose one"):
        open_dataset(tmp_path / "d")
    (tmp_path / "d" / "test" / "inst" / "f.tif").unlink()
    with pytest.raises(InputError, match=r"missing instance map for f.png"):
        open_dataset(tmp_path / "d", split="test")


def test_folder_split_file_repeats_follow_every_window(tmp_path, synth):
    images, inst, _ = synth
    names = [f"i{k}" for k in range(6)]
    folder = fixtures.write_folder(tmp_path / "f", images, inst, None, names)
    split_file = tmp_path / "folds.csv"
    split_file.write_text("name,fold\ni0,train\ni1,train\ni1,train\ni1,train\ni2,train\ni3,val\ni4,test\ni5,test\n")
    whole = open_dataset(folder, split="train", split_file=split_file)
    assert [whole[i].meta.name for i in range(len(whole))] == ["i0", "i1", "i2"]
    assert whole.repeats().tolist() == [1, 3, 1]
    tiles = open_dataset(folder, split="train", split_file=split_file, crop="tiled", crop_size=32)  # 64²: 4 windows
    assert len(tiles) == 12 and tiles.repeats().tolist() == [1] * 4 + [3] * 4 + [1] * 4
    assert open_dataset(folder, split="val", split_file=split_file).repeats() is None
