"""A reader option that would change nothing is refused, not ignored (the twelfth probe: fold without kfold,
kfold/fold/val_fraction beside a split_file, crop_size with crop none and crops_per_image with crop tiled were
accepted; stride larger than crop_size left pixels in no window)."""

from __future__ import annotations

import pytest

from cellprobe.data import fixtures, open_dataset
from cellprobe.errors import InputError


@pytest.mark.parametrize(("options", "problem"), [
    ({"fold": 3}, "fold applies only with kfold"),
    ({"split_file": "SPLIT", "kfold": 3}, "kfold apply to splits drawn by source"),
    ({"split_file": "SPLIT", "val_fraction": 0.5}, "val_fraction apply to splits drawn by source"),
])
def test_a_split_option_that_changes_nothing_is_refused(conic_root, tmp_path, options, problem):
    split_file = tmp_path / "split.csv"
    split_file.write_text("patch,fold\n")
    options = {k: (str(split_file) if v == "SPLIT" else v) for k, v in options.items()}
    with pytest.raises(InputError, match=problem):
        open_dataset(conic_root, split="train", **options)


@pytest.mark.parametrize(("options", "problem"), [
    ({"crop": "none", "crop_size": 64}, "crop_size applies only to crop: tiled or random"),
    ({"crop": "tiled", "crop_size": 64, "crops_per_image": 3}, "crops_per_image applies only to crop: random"),
    ({"crop": "tiled", "crop_size": 64, "stride": 65}, "stride 65 is larger than crop_size 64"),
])
def test_a_window_option_that_changes_nothing_is_refused(tmp_path, options, problem):
    root = fixtures.write_cytodark0(tmp_path, [0, 1, 2], size=512)
    with pytest.raises(InputError, match=problem):
        open_dataset(root, split="train", **options)


def test_options_that_apply_still_open(tmp_path):
    root = fixtures.write_cytodark0(tmp_path, [0, 1, 2], size=512)
    assert len(open_dataset(root, split="train", crop="tiled", crop_size=256, stride=128)) > 0
    assert len(open_dataset(root, split="train", crop="random", crop_size=256, crops_per_image=2)) == 2


@pytest.mark.parametrize(("options", "split", "problem"), [
    ({"kfold": 50}, "test", "k-fold by source needs 2 <= k <= "),
    ({"val_fraction": 0.5, "kfold": 2}, "train", "cannot split by source: only 1 source"),
])
def test_a_split_the_dataset_cannot_give_names_the_dataset(conic_root, options, split, problem):
    """The thirteenth session's note: 'k-fold by source needs …' named the option, not the dataset."""
    with pytest.raises(InputError, match=problem) as raised:
        open_dataset(conic_root, split=split, **options)
    assert raised.value.path == str(conic_root)
