"""Fixtures: the real CoNSeP test labels, loaded once."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def consep_test(consep_root):
    """(inst (224, 256, 256), cls) of the real CoNSeP test patches."""
    with np.load(consep_root / "test" / "labels.npz") as z:
        return z["inst"], z["cls"]
