"""Training honours a split file's repeated training rows (CISCA's oversampling) as weighted draws."""

from __future__ import annotations

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback
from tests.training.tiny import tiny_config

from cellprobe.data.fixtures import synthetic_set, write_conic
from cellprobe.run import run_folder as R
from cellprobe.run.train_config import train_config
from cellprobe.training import train
from cellprobe.training.build import class_pixel_counts, open_training_data

NAMES = [f"src{i // 2}-{i:04d}" for i in range(8)]
# patches 0..3 train (patch 1 listed 3 times, patch 2 twice), 4..5 validation, 6..7 test
SPLIT = ["0", "0", "0", "0", "0", "0", "0", "1", "1", "2", "2"]
ROWS = [0, 1, 1, 1, 2, 2, 3, 4, 5, 6, 7]


@pytest.fixture
def oversampled(tmp_path):
    images, inst, cls = synthetic_set(8, seed=3, size=64, num_classes=2, n_nuclei=5)
    root = write_conic(tmp_path / "conic", images, inst, cls, NAMES)
    split_file = tmp_path / "folds.csv"
    split_file.write_text("img_id,fold\n" + "".join(f"{NAMES[r]},{f}\n" for r, f in zip(ROWS, SPLIT, strict=True)))
    return root, split_file


def config(root, split_file, out, **changes):
    """The tiny run's config on a CoNIC layout split by ``split_file``."""
    views = {"cache_views": 1} if changes.get("cache_features", True) else {}  # online training has no views
    cfg = tiny_config(root, out, epochs=1, batch_size=2, **views, **changes)
    cfg["data"] = {"path": str(root), "format": "conic", "train_split": "0", "val_split": "1",
                   "options": {"split_file": str(split_file), "class_names": ["a", "b"]}}
    return cfg


def test_training_data_carries_the_repeats(oversampled, tmp_path):
    root, split_file = oversampled
    data = open_training_data(train_config(config(root, split_file, tmp_path / "run")))
    assert len(data.train_positions) == 4 and data.train_repeats.tolist() == [1, 3, 2, 1]
    assert data.draws_per_epoch == 7 and len(data.val_positions) == 2
    assert data.describe() == ("training data: 4 unique images, 7 weighted draws per epoch (the split lists 2 "
                               "images several times, up to 3×: oversampling); validation: 2 images, each once")
    once = class_pixel_counts(data.train, data.train_positions, 2)
    weighted = class_pixel_counts(data.train, data.train_positions, 2, data.train_repeats)
    by_patch = [class_pixel_counts(data.train, [p], 2) for p in data.train_positions]
    assert (weighted == sum(r * c for r, c in zip(data.train_repeats, by_patch, strict=True))).all()
    assert (once == sum(by_patch)).all()
    # validation drawn from the oversampled training split by source: the repeats follow their patches
    cfg = config(root, split_file, tmp_path / "run2")
    cfg["data"].update(val_split=None, val_fraction=0.5, split_seed=0)
    data = open_training_data(train_config(cfg))
    repeats = dict(zip(data.train.names(), data.train.repeats(), strict=True))
    names = [data.train.names()[p] for p in data.train_positions]
    assert len(names) == 2 and data.train_repeats.tolist() == [repeats[n] for n in names]


class Seen(Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1


@pytest.mark.parametrize("cached", [True, False])
def test_an_epoch_draws_every_repeat_and_the_log_says_so(oversampled, tmp_path, cached):
    root, split_file = oversampled
    seen = Seen()
    run = train(config(root, split_file, tmp_path / "run", cache_features=cached), callbacks=[seen])
    assert run.finished and seen.batches == 4  # 7 weighted draws in batches of 2 (4 unique images: 2 batches)
    log = (run.path / R.LOGS / "framework.log").read_text()
    assert "cellprobe.training: training data: 4 unique images, 7 weighted draws per epoch" in log


def test_without_a_split_file_nothing_changes(tmp_path):
    images, inst, cls = synthetic_set(8, seed=3, size=64, num_classes=2, n_nuclei=5)
    root = write_conic(tmp_path / "conic", images, inst, cls, NAMES)
    cfg = config(root, None, tmp_path / "run")
    cfg["data"].update(train_split="train", val_split=None, options={"class_names": ["a", "b"]})
    data = open_training_data(train_config(cfg))
    assert data.train_repeats is None and data.draws_per_epoch == len(data.train_positions)
    assert data.describe().startswith(f"training data: {len(data.train_positions)} images, each drawn once")
    assert np.array_equal(data.train_positions, np.sort(data.train_positions))
