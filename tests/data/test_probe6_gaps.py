"""Gaps a hostile probe found: fold names that look distinct but are not (full-width digits, ``ALL``), dataset
files other than images linked outside the dataset folder, and ``data check`` reports wrapped when redirected."""

from __future__ import annotations

import numpy as np
import pytest

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.splits import read_split_file, split_file_folds
from cellprobe.errors import InputError

NAMES = ["a", "b", "c", "d"]


def _write(tmp_path, text: str):
    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8")
    return path


# --- 1. fold names: NFKC look-alikes and reserved names in any case ---------------------------------------

@pytest.mark.parametrize(("text", "row", "problem"), [
    ("img_id,fold\na,0\nb,\uff10\nc,1\nd,2\n", 1, "fold '\uff10' is the same as fold '0' (row 0)"),
    ("img_id,fold\na,\uff10\nb,0\nc,1\nd,2\n", 0, "fold '\uff10' is spelt with Unicode compatibility characters"),
    ("img_id,fold\na,0\nb,1\nc,\uff12\nd,2\n", 2, "fold '\uff12' is spelt with Unicode compatibility characters"),
    ("img_id,fold\na,train\nb,\uff54rain\nc,1\nd,2\n", 1, "fold '\uff54rain' is the same as fold 'train' (row 0)"),
    ("img_id,fold\na,1\nb,0\nc,\uff0b1\nd,2\n", 2, "fold '\uff0b1' is the same number as fold '1' (row 0)"),
    ("img_id,fold\na,0\nb,ALL\nc,1\nd,2\n", 1, "fold name 'ALL' is reserved"),
    ("img_id,fold\na,0\nb,All\nc,1\nd,2\n", 1, "fold name 'All' is reserved"),
    ("img_id,fold\na,0\nb,\uff41ll\nc,1\nd,2\n", 1, "fold name '\uff41ll' is reserved"),
])
def test_lookalike_and_reserved_fold_names_are_refused(tmp_path, text, row, problem):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_split_file(path, NAMES)
    assert "\n" not in str(err.value)
    assert err.value.path == f"{path} row {row} (line {row + 2})" and problem in err.value.problem
    with pytest.raises(InputError, match=r"is the same|reserved|compatibility"):
        split_file_folds(path)


def test_plain_fold_names_still_read(tmp_path):
    path = _write(tmp_path, "img_id,fold\na,train\nb,fold1\nc,0\nd,all_else\n")
    assert list(read_split_file(path, NAMES)) == ["train", "fold1", "0", "all_else"]
    assert split_file_folds(path) == ["train", "fold1", "0", "all_else"]


# --- 2. every file a reader opens stays inside the dataset folder -----------------------------------------

def _patches(tmp_path, synth):
    images, inst, cls = synth
    return fixtures.write_patches(tmp_path / "ds" / "train", images[:4], inst[:4], cls[:4],
                                  ["p0", "p1", "p2", "p3"], ["s0", "s0", "s1", "s1"])


def _link_out(path, tmp_path):
    outside = tmp_path / f"outside-{path.name}"
    path.rename(outside)
    path.symlink_to(outside)
    return outside


@pytest.mark.parametrize("file", ["labels.npz", "patch_info.csv"])
def test_patches_files_linked_outside_are_refused(cli, tmp_path, synth, file):
    folder = _patches(tmp_path, synth)
    _link_out(folder / file, tmp_path)
    with pytest.raises(InputError, match="is a link leading outside the dataset folder") as err:
        open_dataset(folder)
    assert err.value.path == str(folder / file)
    rc, out, errs = cli("data", "check", folder.parent)
    assert rc == 2 and out == ""
    lines = errs.strip().splitlines()
    assert len(lines) == 1 and str(folder / file) in lines[0] and "link leading outside" in lines[0]


def test_patches_files_linked_inside_are_read(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    (folder.parent / "store").mkdir()
    for file in ("labels.npz", "patch_info.csv"):
        (folder / file).rename(folder.parent / "store" / file)
        (folder / file).symlink_to(folder.parent / "store" / file)
    assert len(open_dataset(folder)) == 4


def test_dataset_yaml_linked_outside_is_refused(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    outside = tmp_path / "dataset.yaml"
    outside.write_text("name: x\n")
    (folder.parent / "dataset.yaml").symlink_to(outside)
    with pytest.raises(InputError, match="is a link leading outside the dataset folder") as err:
        open_dataset(folder.parent, split="train")
    assert err.value.path == str(folder.parent / "dataset.yaml")


@pytest.mark.parametrize("file", ["images.npy", "labels.npy", "patch_info.csv"])
def test_conic_files_linked_outside_are_refused(cli, tmp_path, conic_root, file):
    _link_out(conic_root / file, tmp_path)
    with pytest.raises(InputError, match="is a link leading outside the dataset folder") as err:
        open_dataset(conic_root)
    assert err.value.path == str(conic_root / file)
    rc, _, errs = cli("data", "check", conic_root)
    assert rc == 2 and len(errs.strip().splitlines()) == 1


def test_folder_sources_csv_linked_outside_is_refused(tmp_path, synth):
    images, inst, _ = synth
    folder = fixtures.write_folder(tmp_path / "f", images[:2], inst[:2], None, ["a", "b"], sources=["s", "s"])
    _link_out(folder / "sources.csv", tmp_path)
    with pytest.raises(InputError, match="is a link leading outside the dataset folder") as err:
        open_dataset(folder)
    assert err.value.path == str(folder / "sources.csv")


# --- 3. data check redirected: report lines never wrap, no stray line on stderr ---------------------------

def test_check_report_lines_do_not_wrap_when_redirected(cli, tmp_path):
    inst = np.zeros((2, 16, 16), np.int32)
    inst[0, 2:6, 2:6] = 1
    inst[1, 1:4, 1:4] = 3
    inst[1, 10:14, 10:15] = 3  # instance 3 of p1 in two parts: a warning
    cls = (inst > 0).astype(np.uint8)
    images = np.full((2, 16, 16, 3), 200, np.uint8)
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "blobs" / "train"
    folder = fixtures.write_patches(deep, images, inst, cls, ["p0", "p1"], ["s0", "s1"])
    rc, out, err = cli("data", "check", folder.parent)
    assert rc == 0
    line = next(x for x in out.splitlines() if "separate parts" in x)
    assert line.startswith(f"train: {folder / 'labels.npz'}[1]: patch 'p1'") and line.endswith("sharing an id?")
    assert len(line) > 80
    assert err == ""
