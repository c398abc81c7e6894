"""Data: the released formats of the public datasets, training targets, augmentation and validation."""

from cellprobe.data.sample import PatchDataset, Sample, SampleMeta

__all__ = ["PatchDataset", "Sample", "SampleMeta"]
