"""Tiny real runs for tests: 64² synthetic patches in the ``patches`` layout, a random EfficientNet-Lite0 (no
download), a decoder a few hundred parameters wide. Imported by the training, inference and CLI tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellprobe.data.fixtures import synthetic_set, write_patches

TINY_DECODER = {"pyramid_channels": [8, 8, 16, 16], "decoder_channels": [16, 8, 8, 4, 4], "stem_channels": [4, 4]}


def make_tiny_data(root: Path) -> Path:
    """train/ (8 patches of 4 source images) and test/ (4 patches) split folders, 2 classes."""
    images, inst, cls = synthetic_set(12, seed=0, size=64, num_classes=2, n_nuclei=5)
    names = [f"p{i:02d}" for i in range(12)]
    sources = [f"img{i // 2}" for i in range(12)]
    write_patches(root / "train", images[:8], inst[:8], cls[:8], names[:8], sources[:8])
    write_patches(root / "test", images[8:], inst[8:], cls[8:], names[8:], sources[8:])
    return root


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


_SHARED: dict[str, Path] = {}


def shared_run(tmp_path_factory) -> Path:
    """One tiny trained run (1 epoch, cached mode, identity view only) per test session, shared by the inference and CLI tests
    (which must not change its checkpoints; tuning may rewrite its postprocess.json)."""
    if "run" not in _SHARED:
        from cellprobe.training import train

        root = tmp_path_factory.mktemp("tiny-run")
        data = make_tiny_data(root / "data")
        _SHARED["data"] = data
        _SHARED["run"] = train(tiny_config(data, root / "run", epochs=1, cache_views=1)).path
    return _SHARED["run"]


def shared_data() -> Path:
    return _SHARED["data"]
