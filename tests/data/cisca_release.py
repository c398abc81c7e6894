"""Synthetic PanNuke and CoNIC releases of the released sizes for CISCA's split files: PanNuke's folds of
2,656 / 2,523 / 2,722 patches (tissues as the split file names them) and CoNIC's 4,981 patches, as 2×2-px images
whose pixels encode their release row, so that a sample can be traced back to the row it must come from.
Imported by the data and training tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cellprobe.data.pannuke import NAME_PATTERN, fold_paths

#: CISCA's published split files beside the project checkout (pannuke_folds.csv, conic_folds.csv)
SHARED_SPLITS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cisca_splits"

PANNUKE_FOLD_SIZES = {1: 2656, 2: 2523, 3: 2722}
CONIC_PATCHES = 4981
# types.npy spells tissues this way; CISCA's names lower-case them
RELEASE_TISSUE = {"adrenal_gland": "Adrenal_gland", "bile-duct": "Bile-duct", "headneck": "HeadNeck"}


def shared_split_files() -> Path:
    """The folder of CISCA's split files, or skip with the reason."""
    if not ((SHARED_SPLITS / "pannuke_folds.csv").is_file() and (SHARED_SPLITS / "conic_folds.csv").is_file()):
        pytest.skip(f"needs CISCA's split files: {SHARED_SPLITS} is absent (it ships beside the project checkout)")
    return SHARED_SPLITS


def split_rows(path: Path) -> list[tuple[str, str]]:
    """(img_id, fold) of every row of a split file."""
    with open(path, newline="") as f:
        return [(r["img_id"], r["fold"]) for r in csv.DictReader(f)]


def encode(rows: np.ndarray, k: int) -> np.ndarray:
    """(N, 2, 2, 3) uint8 images whose pixels spell (fold k, row high byte, row low byte)."""
    images = np.zeros((len(rows), 2, 2, 3), np.uint8)
    images[:, 0, 0] = k
    images[:, 0, 1] = (rows // 256)[:, None]
    images[:, 1, 0] = (rows % 256)[:, None]
    return images


def decode(image: np.ndarray) -> tuple[int, int]:
    """(fold, row) that :func:`encode` wrote into ``image``."""
    return int(image[0, 0, 0]), int(image[0, 1, 0]) * 256 + int(image[1, 0, 0])


def write_pannuke_release(root: Path, split_file: Path) -> Path:
    """PanNuke's three folds at their released sizes (float64 arrays, as released): one neoplastic nucleus of
    one pixel per patch, tissues from the names of ``split_file``."""
    tissues: dict[int, list[str]] = {k: [""] * n for k, n in PANNUKE_FOLD_SIZES.items()}
    for name, _ in split_rows(split_file):
        m = NAME_PATTERN.fullmatch(name)
        tissues[int(m["fold"])][int(m["row"])] = RELEASE_TISSUE.get(m["tissue"], m["tissue"].capitalize())
    for k, n in PANNUKE_FOLD_SIZES.items():
        assert all(tissues[k]), f"the split file names every row of fold {k}"
        images_path, types_path, masks_path = fold_paths(root, k)
        images_path.parent.mkdir(parents=True)
        masks_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(images_path, encode(np.arange(n), k).astype(np.float64))
        np.save(types_path, np.array(tissues[k]))
        masks = np.zeros((n, 2, 2, 6), np.float64)
        masks[:, 0, 0, 0] = 1
        masks[..., 5] = masks[..., 0] == 0
        np.save(masks_path, masks)
    return root


def write_conic_release(root: Path, split_file: Path) -> Path:
    """CoNIC's 4,981 patches, named as in ``split_file``, in a shuffled order; one nucleus of one pixel each."""
    names = sorted({name for name, _ in split_rows(split_file)})
    assert len(names) == CONIC_PATCHES
    names = [names[i] for i in np.random.default_rng(0).permutation(len(names))]
    root.mkdir(parents=True)
    np.save(root / "images.npy", encode(np.arange(len(names)), 0))
    labels = np.zeros((len(names), 2, 2, 2), np.uint16)
    labels[:, 0, 0] = (1, 2)
    np.save(root / "labels.npy", labels)
    (root / "patch_info.csv").write_text("patch_info\n" + "\n".join(names) + "\n")
    return root
