"""Torch datasets of training items: (image, targets) and, in cached mode, the encoder taps.

Items are requested by :class:`~cellprobe.training.sampling.Draw` (index, view, seed), so an item is a pure
function of its draw. Online items go through the data module's augmentation (geometric + colour); cached items
only through the dihedral view whose taps the feature cache holds (colour changes would not match the cached
features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cellprobe.data.sample import PatchDataset, Sample
from cellprobe.data.targets import TargetConfig, make_targets
from cellprobe.training.sampling import Draw

#: (sample, draw) → augmented (image, inst, cls)
AugmentFn = Callable[[Sample, Draw], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: (array (H, W[, C]), view) → the array in that dihedral view
ViewFn = Callable[[np.ndarray, int], np.ndarray]
#: (dataset position, view) → taps of that view, one (C, h, w) array per tap
TapsFn = Callable[[int, int], Sequence[np.ndarray]]


def make_item(image: np.ndarray, inst: np.ndarray, cls: np.ndarray,
              targets: TargetConfig | None = None) -> dict[str, torch.Tensor]:
    """Tensors of one training item: image (3,H,W) float in [0,1], the targets of its labels, and the
    instance map itself (validation PQ scores against it)."""
    t = make_targets(np.ascontiguousarray(inst), np.ascontiguousarray(cls), targets)
    return {
        "image": torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div_(255.0),
        "semantic": torch.from_numpy(np.asarray(t.semantic, dtype=np.int64)),
        "distance": torch.from_numpy(np.asarray(t.distance, dtype=np.float32)),
        "cls": torch.from_numpy(np.asarray(t.cls, dtype=np.int64)),
        "inst": torch.from_numpy(np.array(inst, dtype=np.int32)),
    }


class OnlineSet(Dataset):
    """Patches of ``dataset`` at ``positions``; ``augment`` (None: none) applied per draw."""

    def __init__(self, dataset: PatchDataset, positions: Sequence[int], augment: AugmentFn | None = None,
                 targets: TargetConfig | None = None) -> None:
        self.dataset, self.positions, self.augment = dataset, list(positions), augment
        self.targets = targets

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, draw: Draw | int) -> dict[str, Any]:
        draw = draw if isinstance(draw, Draw) else Draw(int(draw), 0, 0)
        sample = self.dataset[self.positions[draw.index]]
        if self.augment is None:
            if draw.view:
                raise ValueError("a dihedral view was drawn but the set has no augmentation")
            return make_item(sample.image, sample.inst, sample.cls, self.targets)
        return make_item(*self.augment(sample, draw), self.targets)


class CachedSet(Dataset):
    """Patches of ``dataset`` at ``positions`` with their cached taps; the image and labels are put in the
    drawn view with ``view_fn`` (the same transform the cache applied before running the encoder)."""

    def __init__(self, dataset: PatchDataset, positions: Sequence[int], taps: TapsFn, view_fn: ViewFn,
                 targets: TargetConfig | None = None) -> None:
        self.dataset, self.positions, self.taps, self.view_fn = dataset, list(positions), taps, view_fn
        self.targets = targets

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, draw: Draw | int) -> dict[str, Any]:
        draw = draw if isinstance(draw, Draw) else Draw(int(draw), 0, 0)
        pos = self.positions[draw.index]
        sample = self.dataset[pos]
        v = draw.view
        item = make_item(self.view_fn(sample.image, v), self.view_fn(sample.inst, v), self.view_fn(sample.cls, v),
                         self.targets)
        item["taps"] = [torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)) for t in self.taps(pos, v)]
        return item
