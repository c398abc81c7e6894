"""A released split has one spelling: other spellings of it are refused, not read as it (the tenth probe:
'FOLD1', ' fold 1', 'fold01' and 'fold١' (an Arabic-Indic digit) read CytoDArk0's fold 1, 'Train' CoNSeP's
train split), so a bench cell or a run's config names a split one way only."""

from __future__ import annotations

import pytest

from cellprobe.data import fixtures, open_dataset
from cellprobe.errors import InputError


def test_cytodark0_splits_have_one_spelling(tmp_path):
    root = fixtures.write_cytodark0(tmp_path, [0, 1, 2, 0], size=512)
    assert len(open_dataset(root, split="fold1")) == 4
    for split in ("FOLD1", " fold 1", "fold 1", "fold01", "fold\u0661", "fold\uff11", "Train", "fold1\u200b"):
        with pytest.raises(InputError, match="unknown CytoDArk0 split"):
            open_dataset(root, split=split)


def test_pannuke_splits_have_one_spelling(pannuke_root):
    assert len(open_dataset(pannuke_root, split="fold2")) == 3
    for split in ("Fold 2", "FOLD2", "2", " fold2", "fold\u0662", "Val"):
        with pytest.raises(InputError, match="unknown PanNuke split"):
            open_dataset(pannuke_root, split=split)


def test_consep_and_monuseg_splits_have_one_spelling(tmp_path):
    consep = fixtures.write_consep(tmp_path / "consep", {"train": 1, "test": 1}, size=300)
    monuseg = fixtures.write_monuseg(tmp_path / "monuseg", {"train": 1, "test": 1}, size=300, n_nuclei=5)
    assert len(open_dataset(consep, split="train")) and len(open_dataset(monuseg, split="test"))
    for split in ("Train", "TEST", " test"):
        with pytest.raises(InputError, match="unknown CoNSeP split"):
            open_dataset(consep, split=split)
        with pytest.raises(InputError, match=r"MoNuSeg split .* is missing"):
            open_dataset(monuseg, split=split)
