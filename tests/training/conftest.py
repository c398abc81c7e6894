"""Tiny real runs for the training tests: 64² synthetic patches in the ``patches`` layout, a random
EfficientNet-Lite0 (no download), a decoder a few hundred parameters wide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cellprobe.data.fixtures import synthetic_set, write_patches

TINY_DECODER = {"pyramid_channels": [8, 8, 16, 16], "decoder_channels": [16, 8, 8, 4, 4], "stem_channels": [4, 4]}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-data")
    images, inst, cls = synthetic_set(12, seed=0, size=64, num_classes=2, n_nuclei=5)
    names = [f"p{i:02d}" for i in range(12)]
    sources = [f"img{i // 2}" for i in range(12)]
    write_patches(root / "train", images[:8], inst[:8], cls[:8], names[:8], sources[:8])
    write_patches(root / "test", images[8:], inst[8:], cls[8:], names[8:], sources[8:])
    return root


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """One feature cache shared by the tests' runs (the key inside keeps different encoders apart)."""
    return tmp_path_factory.mktemp("tiny-cache")


def tiny_config(data: Path, out: Path, **changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "output": str(out),
        "encoder": {"name": "efficientnet-lite0", "weights": "random"},
        "data": {"path": str(data), "format": "patches", "val_fraction": 0.25},
        "epochs": 2,
        "batch_size": 4,
        "decoder": dict(TINY_DECODER),
        "trainer": {"accelerator": "cpu", "progress": False, "log_every_n_steps": 1},
    }
    cfg.update(changes)
    return cfg
