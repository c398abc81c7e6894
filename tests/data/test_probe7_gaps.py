"""Gaps of the seventh hostile probe in the readers: the whole-image releases (CoNSeP, MoNuSeg, CytoDArk0) let
a file linked outside the dataset folder be read, as the patch layouts no longer do."""

from __future__ import annotations

import pytest

from cellprobe.data import fixtures, open_dataset
from cellprobe.errors import InputError


def _link_out(path, tmp_path):
    outside = tmp_path / f"outside-{path.name}"
    path.rename(outside)
    path.symlink_to(outside)


def _consep(tmp_path):
    return fixtures.write_consep(tmp_path / "ds", {"train": 1, "test": 1}, size=64)


def _monuseg(tmp_path):
    return fixtures.write_monuseg(tmp_path / "ds", {"train": 1}, size=64, n_nuclei=3)


def _cytodark0(tmp_path):
    return fixtures.write_cytodark0(tmp_path / "ds", [0, 1], size=256)


@pytest.mark.parametrize(("make", "pattern"), [
    (_consep, "**/Images/*.png"), (_consep, "**/Labels/*.mat"),
    (_monuseg, "**/Tissue Images/*.tif"), (_monuseg, "**/Annotations/*.xml"),
    (_cytodark0, "**/image/*.png"), (_cytodark0, "**/label/*.tiff"), (_cytodark0, "**/folds.csv"),
])
def test_whole_image_release_files_linked_outside_are_refused(cli, tmp_path, make, pattern):
    root = make(tmp_path)
    path = sorted(root.glob(pattern))[0]
    _link_out(path, tmp_path)
    with pytest.raises(InputError, match="is a link leading outside the dataset folder") as err:
        open_dataset(root)
    assert err.value.path == str(path)
    rc, out, errs = cli("data", "check", root)
    assert rc == 2 and out == ""
    lines = errs.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0]


def test_whole_image_release_reached_through_a_linked_root_still_reads(tmp_path):
    root = _consep(tmp_path)
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    assert len(open_dataset(tmp_path / "alias")) > 0


@pytest.mark.parametrize(("text", "row", "problem"), [
    ("img_id,fold\na,test\nb,Test\nc,1\nd,2\n", 1, "fold 'Test' is the same as fold 'test' (row 0) but for case"),
    ("img_id,fold\na,TRAIN\nb,train\nc,1\nd,2\n", 1, "fold 'train' is the same as fold 'TRAIN' (row 0)"),
    ("img_id,fold\na,train\nb,train\u200b\nc,1\nd,2\n", 1, "invisible or control character U+200B"),
    ("img_id,fold\na,\u200btrain\nb,0\nc,1\nd,2\n", 0, "invisible or control character U+200B"),
    ("img_id,fold\na,tr\tain\nb,0\nc,1\nd,2\n", 0, "invisible or control character U+0009"),
])
def test_fold_names_apart_only_by_case_or_invisible_characters_are_refused(tmp_path, text, row, problem):
    from cellprobe.data.splits import read_split_file

    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_split_file(path, ["a", "b", "c", "d"])
    assert err.value.path == f"{path} row {row} (line {row + 2})" and problem in err.value.problem


@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999"])
def test_reader_seeds_numpy_cannot_take_are_one_line(cli, tmp_path, synth, conic_root, seed):
    """The windows' seed (random crops) and the split seed (CoNIC's train/val by source) were numpy tracebacks."""
    images, inst, _ = synth
    folder = fixtures.write_folder(tmp_path / "mine", images[:4], inst[:4], None, ["a", "b", "c", "d"])
    for args in ((folder, "-o", "crop=random", "-o", "crop_size=32", "-o", f"seed={seed}"),
                 (conic_root, "--split", "train", "-o", f"seed={seed}")):
        rc, out, err = cli("data", "check", *args)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "seed" in err, (args, err)


@pytest.mark.parametrize("fold", ["1_0", "\u0661", " 1", "01", "+1", "1.0"])
def test_cytodark0_folds_are_plain_whole_numbers(tmp_path, fold):
    """int() read '1_0' as fold 10 and an Arabic-Indic one as fold 1; split files refuse those spellings."""
    root = _cytodark0(tmp_path)
    folds = next(root.glob("**/folds.csv"))
    lines = folds.read_text().splitlines()
    img_id = lines[1].split(",")[0]
    folds.write_text("\n".join([lines[0], f"{img_id},{fold}", *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="is not a plain whole number") as err:
        open_dataset(root)
    assert err.value.path.startswith(f"{folds} row 0")
