"""Real CoNSeP test patches stacked into the CoNIC layout, and the names of their 4 classes."""

from __future__ import annotations

import numpy as np
import pytest

CONSEP_CLASSES = ("other", "inflammatory", "epithelial", "spindle")


@pytest.fixture(scope="session")
def consep_labels(consep_root) -> np.ndarray:
    """(224, 256, 256, 2) int64: instance id, class id (exactly the CoNIC release layout)."""
    with np.load(consep_root / "test" / "labels.npz") as z:
        return np.stack([z["inst"].astype(np.int64), z["cls"].astype(np.int64)], axis=-1)


@pytest.fixture(scope="session")
def consep_sources(consep_root) -> list[str]:
    import pandas as pd

    return pd.read_csv(consep_root / "test" / "patch_info.csv")["source_image"].astype(str).tolist()
