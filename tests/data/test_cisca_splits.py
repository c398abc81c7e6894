"""CISCA's published splits (the paper's protocol) read from the shared split files over synthetic releases of
the released sizes (tests/data/cisca_release.py): the published counts and names, oversampled training rows as
repeats, and one-line refusals of wrong or truncated split files."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tests.data.cisca_release import decode, split_rows, write_conic_release, write_pannuke_release

from cellprobe.data import open_dataset
from cellprobe.data.pannuke import NAME_PATTERN, fold_paths
from cellprobe.errors import InputError

PUBLISHED = {"pannuke": {"0": 5688, "1": 632, "2": 1581}, "conic": {"0": 3589, "1": 464, "2": 928}}
TRAIN_ROWS = {"pannuke": 16035, "conic": 16690}


@pytest.fixture(scope="session")
def pannuke_release(tmp_path_factory, cisca_splits) -> Path:
    return write_pannuke_release(tmp_path_factory.mktemp("pannuke") / "pannuke", cisca_splits / "pannuke_folds.csv")


@pytest.fixture(scope="session")
def conic_release(tmp_path_factory, cisca_splits) -> Path:
    return write_conic_release(tmp_path_factory.mktemp("conic") / "conic", cisca_splits / "conic_folds.csv")


def check_published_split(fmt: str, root: Path, split_file: Path, release_row) -> None:
    rows = split_rows(split_file)
    listed = Counter(rows)
    for fold, count in PUBLISHED[fmt].items():
        ds = open_dataset(root, fmt, fold, split_file=split_file)
        names = ds.names()
        assert len(ds) == len(names) == len(set(names)) == count
        assert set(names) == {name for name, f in rows if f == fold}
        repeats = ds.repeats()
        if fold == "0":  # training rows repeat: the repeats are the times each name is listed
            assert repeats is not None and int(repeats.sum()) == TRAIN_ROWS[fmt]
            assert [int(r) for r in repeats] == [listed[(n, fold)] for n in names]
        else:
            assert repeats is None
        for i in (0, len(ds) // 2, len(ds) - 1):  # each sample is the release row its name says
            sample = ds[i]
            assert sample.meta.name == names[i] and decode(sample.image) == release_row(names[i])


def test_pannuke_published_counts_and_names(pannuke_release, cisca_splits):
    def release_row(name: str) -> tuple[int, int]:
        m = NAME_PATTERN.fullmatch(name)
        return int(m["fold"]), int(m["row"])

    check_published_split("pannuke", pannuke_release, cisca_splits / "pannuke_folds.csv", release_row)
    everything = open_dataset(pannuke_release, "pannuke", split_file=cisca_splits / "pannuke_folds.csv")
    assert len(everything) == 7901 and everything.repeats() is None


def test_conic_published_counts_and_names(conic_release, cisca_splits):
    order = (conic_release / "patch_info.csv").read_text().split()[1:]
    position = {name: i for i, name in enumerate(order)}

    def release_row(name: str) -> tuple[int, int]:
        return 0, position[name]

    check_published_split("conic", conic_release, cisca_splits / "conic_folds.csv", release_row)


def refused(root: Path, fmt: str, split_file: Path, split: str = "0", **options) -> str:
    with pytest.raises(InputError) as err:
        open_dataset(root, fmt, split, split_file=split_file, **options)
    message = str(err.value)
    assert "\n" not in message and str(split_file) in message
    return message


def test_wrong_split_file_is_refused_with_one_line(pannuke_release, conic_release, cisca_splits, tmp_path):
    pannuke_file, conic_file = cisca_splits / "pannuke_folds.csv", cisca_splits / "conic_folds.csv"
    assert "row 0 (line 2): patch 'dpath_12-0059' is not in the dataset: not a PanNuke patch name" in \
        refused(pannuke_release, "pannuke", conic_file)
    assert "row 0 (line 2): patch 'pannuke_colon_fold2_1808' is not in the dataset" in \
        refused(conic_release, "conic", pannuke_file)
    text = pannuke_file.read_text()
    edited = tmp_path / "edited.csv"
    edited.write_text(text.replace("pannuke_colon_fold2_1808,", "pannuke_breast_fold2_1808,", 1))
    assert "row 0 (line 2): patch 'pannuke_breast_fold2_1808' is not in the dataset: row 1808 of Fold 2 is " \
           "tissue 'Colon'" in refused(pannuke_release, "pannuke", edited)
    edited.write_text(text.replace("pannuke_colon_fold2_1808,", "pannuke_colon_fold2_2523,", 1))
    assert "Fold 2 has 2523 patches (rows 0..2522)" in refused(pannuke_release, "pannuke", edited)
    edited.write_text(text + "pannuke_colon_fold2_1808,2\n")
    assert "row 18248 (line 18250): patch 'pannuke_colon_fold2_1808' is listed in fold '2' here and in fold '0' " \
           "at row 0" in refused(pannuke_release, "pannuke", edited)
    with pytest.raises(InputError, match="give protocol or split_file, not both"):
        open_dataset(pannuke_release, "pannuke", "0", split_file=pannuke_file, protocol=2)
    assert "fold 'train' is missing (folds: 0, 1, 2)" in refused(pannuke_release, "pannuke", pannuke_file, "train")


def test_release_of_other_sizes_is_refused(pannuke_release, cisca_splits, tmp_path):
    """Fold 3 one row short (another release, or a damaged one): the first name it lacks is refused."""
    root = tmp_path / "pannuke"
    shutil.copytree(pannuke_release, root)
    for path in fold_paths(root, 3):
        np.save(path, np.load(path)[:-1])
    message = refused(root, "pannuke", cisca_splits / "pannuke_folds.csv")
    assert "pannuke_" in message and "Fold 3 has 2721 patches (rows 0..2720)" in message


@pytest.mark.parametrize("fmt", ["pannuke", "conic"])
@pytest.mark.parametrize("cut", ["half", "lines", "in_last_name", "after_comma"])
def test_truncated_split_file_is_refused_with_one_line(pannuke_release, conic_release, cisca_splits, tmp_path,
                                                       fmt, cut):
    data = (cisca_splits / f"{fmt}_folds.csv").read_bytes()
    if cut == "half":
        data = data[: len(data) // 2]
    elif cut == "lines":  # whole rows lost: the test images they held are in no fold
        data = b"".join(data.splitlines(keepends=True)[:-50])
    elif cut == "in_last_name":
        data = data[: data.rindex(b"\n", 0, len(data) - 1) + 8]
    else:
        data = data[: data.rindex(b",") + 1]
    truncated = tmp_path / f"{fmt}_folds.csv"
    truncated.write_bytes(data)
    refused(pannuke_release if fmt == "pannuke" else conic_release, fmt, truncated, "2")
