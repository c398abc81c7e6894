"""Gaps a hostile probe found in ``data check`` and the patch readers: instances of several separate parts,
two image files for one patch, names with whitespace around them, links leading outside the dataset, a column
named twice, unknown arrays in labels.npz, and data warnings in Python's raw format."""

from __future__ import annotations

import numpy as np
import pytest

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.check import check_path
from cellprobe.data.validate import disjoint_instances
from cellprobe.errors import InputError


def _patches(tmp_path, synth, names=("p0", "p1", "p2", "p3"), sources=("s0", "s0", "s1", "s1")):
    images, inst, cls = synth
    n = len(names)
    fixtures.write_patches(tmp_path / "ds" / "train", images[:n], inst[:n], cls[:n], list(names), list(sources))
    return tmp_path / "ds" / "train"


def _two_blob_patches(tmp_path):
    """Two 16² patches: instance 3 of p1 is two separate squares; everything else is one blob each."""
    inst = np.zeros((2, 16, 16), np.int32)
    inst[0, 2:6, 2:6] = 1
    inst[1, 1:4, 1:4] = 3
    inst[1, 10:14, 10:15] = 3
    inst[1, 6:9, 1:4] = 5
    cls = (inst > 0).astype(np.uint8)
    images = np.full((2, 16, 16, 3), 200, np.uint8)
    return fixtures.write_patches(tmp_path / "blobs" / "train", images, inst, cls, ["p0", "p1"], ["s0", "s1"])


# --- instances made of several parts: a warning ----------------------------------------------------------

def test_disjoint_instances():
    inst = np.zeros((8, 8), np.int32)
    inst[0:2, 0:2] = 4
    inst[5:8, 5:8] = 4
    inst[2, 2] = 7  # touches instance 4 only diagonally, itself one part
    inst[3, 3] = 7  # diagonal neighbour: the same part (8-connected)
    assert disjoint_instances(inst) == [(4, [9, 4])]
    assert disjoint_instances(np.zeros((4, 4), np.int32)) == []


def test_check_warns_about_an_instance_of_two_parts(cli, tmp_path):
    folder = _two_blob_patches(tmp_path)
    report = check_path(folder.parent)["splits"]["train"]
    found = [a for a in report["anomalies"] if a["kind"] == "disjoint_instance"]
    assert found == [{"where": f"{folder / 'labels.npz'}[1]", "kind": "disjoint_instance", "fatal": False,
                      "message": "patch 'p1': instance 3 is 2 separate parts (20 + 9 px): one nucleus, or several "
                                 "sharing an id?"}]
    assert report["disjoint_instances"] == 1 and report["fatal"] == 0
    assert open_dataset(folder)[1].inst.max() == 5  # a warning: the loaders read it
    rc, out, _ = cli("data", "check", folder.parent)
    assert rc == 0 and "instance 3 is 2 separate parts" in " ".join(out.split())


# --- one file per patch, inside the dataset --------------------------------------------------------------

def test_two_image_files_for_one_patch_are_refused(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    (folder / "images" / "p2.jpg").write_bytes((folder / "images" / "p2.png").read_bytes())
    with pytest.raises(InputError) as err:
        open_dataset(folder)
    assert err.value.path == f"{folder / 'patch_info.csv'} row 2 (line 4)"
    assert "'p2' has several files" in err.value.problem and "p2.png, p2.jpg" in err.value.problem


def test_two_label_maps_for_one_folder_image_are_refused(tmp_path, synth):
    images, inst, _ = synth
    folder = fixtures.write_folder(tmp_path / "f", images[:2], inst[:2], None, ["a", "b"])
    np.save(folder / "inst" / "b.npy", inst[1])
    with pytest.raises(InputError, match=r"'b' has several files .*\(b\.tif, b\.npy\)") as err:
        open_dataset(folder)
    assert err.value.path == str(folder / "inst")


def test_image_linking_outside_the_dataset_is_refused(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    outside = tmp_path / "elsewhere.png"
    (folder / "images" / "p1.png").rename(outside)
    (folder / "images" / "p1.png").symlink_to(outside)
    with pytest.raises(InputError, match="is a link leading outside the dataset folder") as err:
        open_dataset(folder)
    assert err.value.path == f"{folder / 'patch_info.csv'} row 1 (line 3)"
    (folder / "images" / "p1.png").unlink()  # a link that stays inside the dataset is the author's to make
    (folder.parent / "store").mkdir()
    outside.rename(folder.parent / "store" / "p1.png")
    (folder / "images" / "p1.png").symlink_to(folder.parent / "store" / "p1.png")
    assert open_dataset(folder)[1].image.shape == (64, 64, 3)


def test_folder_image_linking_outside_is_refused(tmp_path, synth):
    images, inst, _ = synth
    folder = fixtures.write_folder(tmp_path / "f", images[:2], inst[:2], None, ["a", "b"])
    outside = tmp_path / "b.png"
    (folder / "images" / "b.png").rename(outside)
    (folder / "images" / "b.png").symlink_to(outside)
    with pytest.raises(InputError, match="is a link leading outside the dataset folder") as err:
        open_dataset(folder)
    assert err.value.path == str(folder / "images" / "b.png")


# --- names and tables ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("column", "value"), [("source_image", "s0 "), ("source_image", " s1"), ("patch", "p1 ")])
def test_patches_names_with_surrounding_whitespace_are_refused(tmp_path, synth, column, value):
    folder = _patches(tmp_path, synth)
    info = folder / "patch_info.csv"
    lines = info.read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[2].split(",")
    fields[header.index(column)] = value
    lines[2] = ",".join(fields)
    info.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=f"'{value}' has surrounding whitespace") as err:
        open_dataset(folder)
    assert err.value.path == f"{info} row 1 (line 3)"


@pytest.mark.parametrize("text", ["patch_info\nimg0-0001\nimg0 -0002\nimg1-0003\n",
                                  "patch,source_image\nimg0-0001,img0\nimg0-0002,img0 \nimg1-0003,img1\n",
                                  "patch_info\nimg0-0001\n img0-0002\nimg1-0003\n"])
def test_conic_names_with_surrounding_whitespace_are_refused(tmp_path, synth, text):
    images, inst, cls = synth
    root = fixtures.write_conic(tmp_path / "conic", images[:3], inst[:3], cls[:3], ["img0-0001", "img0-0002", "x-3"])
    (root / "patch_info.csv").write_text(text)
    with pytest.raises(InputError, match="has surrounding whitespace") as err:
        open_dataset(root)
    assert err.value.path == f"{root / 'patch_info.csv'} row 1 (line 3)"


def test_folder_source_with_surrounding_whitespace_is_refused(tmp_path, synth):
    images, inst, _ = synth
    folder = fixtures.write_folder(tmp_path / "f", images[:2], inst[:2], None, ["a", "b"], sources=["s", "s "])
    with pytest.raises(InputError, match="source of 'b' 's ' has surrounding whitespace") as err:
        open_dataset(folder)
    assert err.value.path == f"{folder / 'sources.csv'} row 1 (line 3)"


def test_a_column_named_twice_is_refused(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    info = folder / "patch_info.csv"
    info.write_text("index,patch,source_image,patch\n0,p0,s0,p9\n1,p1,s0,p1\n2,p2,s1,p2\n3,p3,s1,p3\n")
    with pytest.raises(InputError, match=r"column 'patch' appears twice in the header \(columns 2 and 4\)") as err:
        open_dataset(folder)
    assert err.value.path == str(info)
    images, inst, cls = synth
    root = fixtures.write_conic(tmp_path / "conic", images[:2], inst[:2], cls[:2], ["a-1", "b-2"])
    (root / "patch_info.csv").write_text("patch_info,patch_info\na-1,b-2\nb-2,a-1\n")
    with pytest.raises(InputError, match="column 'patch_info' appears twice"):
        open_dataset(root)


def test_unknown_arrays_in_labels_npz_are_refused(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    with np.load(folder / "labels.npz") as z:
        arrays = dict(z)
    np.savez_compressed(folder / "labels.npz", **arrays, types=np.zeros(4, np.uint8))
    with pytest.raises(InputError, match="holds array\\(s\\) 'types' besides 'inst' and 'cls'") as err:
        open_dataset(folder)
    assert err.value.path == str(folder / "labels.npz")


# --- data warnings: one clean line -------------------------------------------------------------------------

def test_data_warning_is_one_clean_line(cli, tmp_path, synth):
    folder = _patches(tmp_path, synth)
    (folder / "images" / "stray.png").write_bytes((folder / "images" / "p0.png").read_bytes())
    rc, _, err = cli("data", "check", folder.parent)
    assert rc == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"warning: {folder / 'images'}: 1 image files not listed in patch_info.csv are ignored "
                     "(e.g. stray.png)"], err
