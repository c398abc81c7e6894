"""Small datasets in each released layout, built on the fly (cellprobe.data.fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellprobe.data import fixtures


@pytest.fixture
def synth():
    """(images, inst, cls) of 6 synthetic 64² patches with 4 classes."""
    return fixtures.synthetic_set(6, seed=1, size=64)


@pytest.fixture
def pannuke_root(tmp_path) -> Path:
    return fixtures.write_pannuke(tmp_path / "pannuke", {1: 4, 2: 3, 3: 2}, size=64)


@pytest.fixture
def conic_root(tmp_path, synth) -> Path:
    images, inst, cls = synth
    names = [f"src{i // 2}-{i:04d}" for i in range(len(images))]
    return fixtures.write_conic(tmp_path / "conic", images, inst, cls, names)


@pytest.fixture(scope="session")
def conic_from_consep(tmp_path_factory, consep_root) -> Path:
    """The CoNIC release layout built from the real CoNSeP training patches of ../shared (names
    ``<source>-<patch>`` as in CoNIC's patch_info.csv)."""
    import pandas as pd
    from PIL import Image

    split = consep_root / "train"
    info = pd.read_csv(split / "patch_info.csv")
    with np.load(split / "labels.npz") as z:
        inst, cls = z["inst"], z["cls"]
    images = np.stack([np.asarray(Image.open(split / "images" / f"{p}.jpg")) for p in info["patch"]])
    names = [f"{s}-{p.rsplit('_', 1)[1]}" for p, s in zip(info["patch"], info["source_image"], strict=True)]
    return fixtures.write_conic(tmp_path_factory.mktemp("conic") / "conic", images, inst, cls, names)


@pytest.fixture(scope="session")
def cisca_splits() -> Path:
    """CISCA's published split files (../shared/data/cisca_splits: pannuke_folds.csv, conic_folds.csv), or skip
    with the reason."""
    from tests.data.cisca_release import shared_split_files

    return shared_split_files()
