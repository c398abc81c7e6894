from __future__ import annotations

import numpy as np
import pytest

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.patches import PatchesDataset
from cellprobe.errors import InputError


def test_reads_shared_consep_layout(consep_root):
    train = open_dataset(consep_root, split="train")
    test = open_dataset(consep_root, split="test")
    assert isinstance(train, PatchesDataset) and (len(train), len(test)) == (432, 224)
    assert train.class_names == ("class1", "class2", "class3", "class4") == test.class_names
    s = test[10]
    assert s.image.shape == (256, 256, 3) and s.meta.source == "test_10" and s.meta.name == "test_10_010"
    assert len(set(train.sources())) == 27 and len(set(test.sources())) == 14


def test_split_choice_errors(consep_root):
    with pytest.raises(InputError, match=r"several splits \(test, train\)"):
        open_dataset(consep_root, format="patches")
    with pytest.raises(InputError, match="split 'val' is missing"):
        open_dataset(consep_root, split="val")


def _write(tmp_path, synth):
    images, inst, cls = synth
    names = [f"p{i}" for i in range(len(images))]
    return fixtures.write_patches(tmp_path / "ds" / "train", images, inst, cls, names, [f"s{i // 3}" for i in range(6)])


def test_class_names_and_mpp_from_dataset_yaml(tmp_path, synth):
    folder = _write(tmp_path, synth)
    (folder.parent / "dataset.yaml").write_text("class_names: [a, b, c, d]\nmpp: 0.5\n")
    ds = open_dataset(folder.parent, split="train")
    assert ds.class_names == ("a", "b", "c", "d") and ds[0].meta.mpp == 0.5
    (folder.parent / "dataset.yaml").write_text("clas_names: [a]\n")
    with pytest.raises(InputError, match="clas_names"):
        open_dataset(folder.parent, split="train")


def test_unlisted_images_warned_missing_images_refused(tmp_path, synth):
    folder = _write(tmp_path, synth)
    (folder / "images" / "stray.png").write_bytes((folder / "images" / "p0.png").read_bytes())
    with pytest.warns(UserWarning, match="1 image files not listed"):
        open_dataset(folder)
    (folder / "images" / "p3.png").unlink()
    with pytest.raises(InputError, match=r"p3\.jpg: missing image of a listed patch"):
        open_dataset(folder)


def test_label_rows_must_match_patch_list(tmp_path, synth):
    folder = _write(tmp_path, synth)
    with np.load(folder / "labels.npz") as z:
        inst, cls = z["inst"], z["cls"]
    np.savez_compressed(folder / "labels.npz", inst=inst[:4], cls=cls)
    with pytest.raises(InputError, match=r"mismatched counts: 'inst' has 4 rows, patch_info.csv 6"):
        open_dataset(folder)
    np.savez_compressed(folder / "labels.npz", inst=-inst.astype(np.int32), cls=cls)
    with pytest.raises(InputError, match=r"labels\.npz\[0\]: negative instance id"):
        open_dataset(folder)[0]
