"""The one sample type and dataset interface every format reader produces.

A sample is an RGB uint8 image with its instance map and class map at the same size. Instance ids are int32,
0 = background, any positive ids (not necessarily contiguous; larger ones are renumbered in order); the class map is per pixel, 0 = background,
1..C = the dataset's classes (``class_names[c - 1]``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

#: the largest instance id a sample holds as it is (int32); larger ids are renumbered by :func:`int32_ids`
INT32_MAX = int(np.iinfo(np.int32).max)


def int32_ids(ids: np.ndarray) -> np.ndarray:
    """Non-negative integer instance ids as int32: as they are when they fit, else renumbered 1..n in their order
    (0 stays background). An id names an instance and nothing more, so label maps of tools that write uint32 or
    uint64 ids (hashes, slide-wide counters) read as the same instances; metrics depend only on which pixels
    share an id and on the ids' order."""
    ids = np.asarray(ids)
    if ids.size == 0 or int(ids.max()) <= INT32_MAX:
        return ids.astype(np.int32, copy=False)
    uniq, inverse = np.unique(ids, return_inverse=True)
    dense = inverse.reshape(ids.shape).astype(np.int32)
    if uniq[0] != 0:  # no background pixel: ids start at 1
        dense += 1
    return dense


@dataclass(frozen=True)
class SampleMeta:
    """Where a sample comes from. ``source`` is the whole image/slide a patch was cut from (split unit)."""

    dataset: str
    name: str
    source: str
    index: int
    tissue: str | None = None
    mpp: float | None = None  # micrometres per pixel
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Sample:
    image: np.ndarray  # (H, W, 3) uint8, RGB
    inst: np.ndarray  # (H, W) int32, 0 = background
    cls: np.ndarray  # (H, W) uint8, 0 = background, 1..C
    meta: SampleMeta

    def __post_init__(self) -> None:
        h, w = self.image.shape[:2]
        if self.image.shape != (h, w, 3) or self.image.dtype != np.uint8:
            raise ValueError(f"{self.meta.name}: image must be (H, W, 3) uint8, got {self.image.shape} {self.image.dtype}")
        if self.inst.shape != (h, w) or self.cls.shape != (h, w):
            raise ValueError(f"{self.meta.name}: label maps {self.inst.shape}/{self.cls.shape} do not match image {(h, w)}")


class PatchDataset(abc.ABC):
    """A sequence of :class:`Sample`; subclasses read one released format."""

    name: str
    class_names: tuple[str, ...]  # without background; class id c is class_names[c - 1]
    mpp: float | None = None

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sources(self) -> Sequence[str]:
        """Source image of every sample (the unit of splitting). Override when cheaper than loading samples."""
        return [self[i].meta.source for i in range(len(self))]

    def repeats(self) -> np.ndarray | None:
        """How many times the split lists each sample (int64, >= 1; a split file that oversamples images by
        listing them several times), or None when it lists each once. Training draws a sample that many times
        per epoch; evaluation reads it once."""
        return None
