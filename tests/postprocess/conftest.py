"""Fixtures: the real CoNSeP test labels (loaded once) and ground-truth maps made into 'predictions'."""

from __future__ import annotations

import numpy as np
import pytest

from cellprobe.data.targets import make_targets


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """(n, H, W) float32 probabilities that are 1 on the given class."""
    return np.eye(n, dtype=np.float32)[labels].transpose(2, 0, 1).copy()


def oracle_maps(inst: np.ndarray, cls: np.ndarray):
    """(semantic probabilities, distance maps, hv maps, type probabilities (5 channels)) from ground truth."""
    t = make_targets(inst, cls)
    return one_hot(t.semantic, 3), t.distance, t.hv, one_hot(t.cls, 5)


@pytest.fixture(scope="session")
def consep_test(consep_root):
    """(inst (224, 256, 256), cls) of the real CoNSeP test patches."""
    with np.load(consep_root / "test" / "labels.npz") as z:
        return z["inst"], z["cls"]
