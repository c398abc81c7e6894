"""Data: the released formats of the public datasets, training targets, augmentation and validation."""

from cellprobe.data.formats import detect_format, open_dataset, released_splits
from cellprobe.data.sample import PatchDataset, Sample, SampleMeta

__all__ = ["PatchDataset", "Sample", "SampleMeta", "detect_format", "open_dataset", "released_splits"]
