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


def _folder(root, synth, names=("a", "b"), class_names=("x", "y")):
    images, inst, cls = synth[:3]
    return fixtures.write_folder(root, images[:2], inst[:2], cls[:2], list(names), class_names=class_names)


def test_folder_layouts_are_read_whole_or_refused(tmp_path, synth):
    """The eleventh probe: split folders beside a root split were ignored, a split folder without inst/ was no
    split, a dataset.yml was ignored, class maps and files of other kinds in images/ were dropped unsaid."""
    import warnings

    root = _folder(tmp_path / "f", synth)
    assert len(open_dataset(root, format="folder", split="train", val_fraction=0.5)) > 0
    _folder(root / "train", synth)
    with pytest.raises(InputError, match=r"holds images/ and inst/ and split folders \(train\)"):
        open_dataset(root, format="folder")
    split_root = tmp_path / "s"
    _folder(split_root / "train", synth)
    (split_root / "test" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="test: has images/ but no inst/"):
        open_dataset(split_root, format="folder", split="train")
    lone = _folder(tmp_path / "lone", synth, class_names=None)
    (lone / "dataset.yml").write_text("class_names: [x, y]\n")
    with pytest.raises(InputError, match=r"dataset\.yml: is not read: cellprobe reads dataset\.yaml"):
        open_dataset(lone, format="folder", split="all")
    extra = _folder(tmp_path / "extra", synth)
    (extra / "images" / "c.webp").write_bytes(b"RIFF")
    (extra / "cls" / "z.tif").write_bytes((extra / "cls" / "a.tif").read_bytes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_dataset(extra, format="folder", split="all")
    said = " | ".join(str(w.message) for w in caught)
    assert "not images cellprobe reads" in said and "c.webp" in said and "1 class maps without an image" in said


def test_a_folder_holding_two_formats_is_refused(tmp_path, pannuke_root):
    from cellprobe.data.formats import detect_format

    assert detect_format(pannuke_root) == "pannuke"
    (pannuke_root / "images.npy").write_bytes(b"")
    (pannuke_root / "labels.npy").write_bytes(b"")
    with pytest.raises(InputError, match=r"layouts of several formats \(pannuke, conic\)"):
        detect_format(pannuke_root)


@pytest.mark.parametrize("stray", ["fold 2", "Fold 4", "Fold2"])
def test_a_folder_named_like_a_pannuke_fold_is_refused(pannuke_root, stray):
    """The eleventh probe: 'fold 2' beside the release's folds (or in place of 'Fold 2') was passed over."""
    (pannuke_root / stray).mkdir()
    with pytest.raises(InputError, match="is not a PanNuke fold folder") as err:
        open_dataset(pannuke_root, split="fold1")
    assert err.value.path == str(pannuke_root / stray)


def test_cytodark0_files_left_out_are_said(tmp_path):
    """The eleventh probe: a label map without an image or folds.csv row, and images not named <id>.png, were
    left out without a word (only unlisted .png images were said)."""
    import warnings

    root = fixtures.write_cytodark0(tmp_path, [0, 1, 2], size=512)
    base = root / "cytoDArk0" / "20x" / "1024x1024"
    first = sorted((base / "image").glob("*.png"))[0]
    (base / "label" / "im9.tiff").write_bytes(next((base / "label").glob("*.tiff")).read_bytes())
    (base / "image" / f"{first.stem}.jpg").write_bytes(first.read_bytes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_dataset(root, split="all", format="cytodark0")
    said = " | ".join(str(w.message) for w in caught)
    assert "1 label maps not in folds.csv" in said and "im9.tiff" in said
    assert "1 images not in folds.csv" in said and f"{first.stem}.jpg" in said


def test_a_pannuke_release_missing_a_fold_is_said(tmp_path):
    """The eleventh probe: with 'Fold 2' missing, the whole release was read as two folds without a word."""
    root = fixtures.write_pannuke(tmp_path / "pannuke", {1: 2, 3: 2}, size=64)
    with pytest.warns(UserWarning, match=r"Fold 2 of the release missing: reading Fold 1, Fold 3 only"):
        assert len(open_dataset(root)) == 4
