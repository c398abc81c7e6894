"""Online-mode augmentation: the drawn dihedral view, then the data module's photometric and elastic
augmentation, seeded by the draw (so a resumed epoch replays the same augmented images)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cellprobe.data.sample import Sample
from cellprobe.training.cached import view_image_or_map
from cellprobe.training.config import TrainConfig
from cellprobe.training.sampling import Draw


class OnlineAugment:
    """(sample, draw) → augmented (image, inst, cls). Picklable for DataLoader workers."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = dict(options)

    def __call__(self, sample: Sample, draw: Draw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image, inst, cls = (np.ascontiguousarray(view_image_or_map(x, draw.view))
                            for x in (sample.image, sample.inst, sample.cls))
        return image, inst, cls


def online_augment(config: TrainConfig) -> OnlineAugment:
    return OnlineAugment(config.augment)
