"""A released layout is read whole or refused: an image without its labels was skipped without a word, and a
folder holding a layout twice read the first one found (the tenth probe)."""

from __future__ import annotations

import shutil

import pytest

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.monuseg import TEST_DIR, TRAIN_DIR
from cellprobe.errors import InputError


def test_a_consep_image_without_labels_is_refused(tmp_path):
    root = fixtures.write_consep(tmp_path, {"train": 2}, size=300)
    assert len(open_dataset(root, split="train")) > 0
    label = next((root / "CoNSeP" / "Train" / "Labels").glob("*.mat"))
    label.unlink()
    with pytest.raises(InputError, match=rf"{label.stem}\.png: has no label file Labels/{label.stem}\.mat"):
        open_dataset(root, split="train")


def test_a_monuseg_image_without_outlines_is_refused(tmp_path):
    root = fixtures.write_monuseg(tmp_path, {"train": 2, "test": 2}, size=300, n_nuclei=5)
    for split, folder in (("train", root / TRAIN_DIR / "Annotations"), ("test", root / TEST_DIR)):
        xml = sorted(folder.glob("*.xml"))[0]
        xml.unlink()
        with pytest.raises(InputError, match=rf"{xml.stem}\.tif: has no annotation file"):
            open_dataset(root, split=split)


def test_a_layout_found_twice_is_refused(tmp_path):
    consep = fixtures.write_consep(tmp_path / "consep", {"train": 1}, size=300)
    shutil.copytree(consep / "CoNSeP" / "Train", consep / "Train")
    with pytest.raises(InputError, match="holds two CoNSeP layouts"):
        open_dataset(consep, split="train", format="consep")
    cyto = fixtures.write_cytodark0(tmp_path / "cyto", [0, 1, 2], size=512)
    shutil.copytree(cyto / "cytoDArk0" / "20x", cyto / "20x")
    with pytest.raises(InputError, match="holds 2 CytoDArk0 layouts for 20x"):
        open_dataset(cyto, split="train", format="cytodark0")
    monuseg = fixtures.write_monuseg(tmp_path / "monuseg", {"train": 1}, size=300, n_nuclei=5)
    shutil.copytree(monuseg / TRAIN_DIR / "Tissue Images", monuseg / "Tissue Images")
    shutil.copytree(monuseg / TRAIN_DIR / "Annotations", monuseg / "Annotations")
    with pytest.raises(InputError, match="holds two MoNuSeg train layouts"):
        open_dataset(monuseg, split="train", format="monuseg")
