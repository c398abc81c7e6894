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
