"""Online-mode augmentation: the data module's Augmenter (dihedral view, elastic, stain, colour, blur, noise),
seeded by the draw, so a resumed epoch replays the same augmented images."""

from __future__ import annotations

from typing import Any

import numpy as np

from cellprobe.data.augment import AugmentConfig
from cellprobe.data.sample import Sample
from cellprobe.run.train_config import TrainConfig
from cellprobe.training.sampling import Draw


class OnlineAugment:
    """(sample, draw) → augmented (image, inst, cls). The albumentations pipeline is built on first use in
    each process, so the callable pickles cleanly into DataLoader workers."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config
        self._augmenter: Any = None

    def __call__(self, sample: Sample, draw: Draw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._augmenter is None:
            from cellprobe.data.augment import Augmenter

            self._augmenter = Augmenter(self.config)
        out = self._augmenter(sample, draw.seed)
        return out.image, out.inst, out.cls

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_augmenter": None}


def online_augment(config: TrainConfig) -> OnlineAugment:
    return OnlineAugment(config.augment)
