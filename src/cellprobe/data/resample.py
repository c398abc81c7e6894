"""Resampling a sample to another resolution (e.g. 40× PanNuke/CoNSeP at ~0.25 µm/px to 20× CoNIC at ~0.5).

The image is resized with area averaging when shrinking and bilinear interpolation when enlarging; label maps
with nearest-neighbour only, so every output id is an input id with its class (never an invented or blended
id). Downscaling can drop small instances entirely: their ids are recorded in ``meta.extra['resample_lost']``
and returned by :func:`lost_instances`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cellprobe.data.sample import Sample
from cellprobe.errors import InputError


def lost_instances(before: np.ndarray, after: np.ndarray) -> list[int]:
    """Instance ids present in ``before`` and absent from ``after``."""
    return sorted(int(i) for i in np.setdiff1d(np.unique(before), np.unique(after)) if i != 0)


def resample(sample: Sample, target_mpp: float) -> Sample:
    """``sample`` at ``target_mpp`` µm/px (its ``meta.mpp`` must be known). Output size is the input size
    times ``mpp / target_mpp``, rounded."""
    import cv2

    mpp = sample.meta.mpp
    if mpp is None:
        raise InputError(sample.meta.name, "µm/px unknown: cannot resample (give the dataset's mpp)")
    if target_mpp <= 0:
        raise InputError(sample.meta.name, f"target µm/px must be positive, got {target_mpp}")
    factor = mpp / target_mpp
    h, w = sample.inst.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))  # cv2 takes (width, height)
    if size == (w, h):
        return replace(sample, meta=replace(sample.meta, mpp=target_mpp))
    image = cv2.resize(sample.image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    inst = cv2.resize(sample.inst, size, interpolation=cv2.INTER_NEAREST_EXACT)
    cls = cv2.resize(sample.cls, size, interpolation=cv2.INTER_NEAREST_EXACT)
    lost = lost_instances(sample.inst, inst)
    extra = dict(sample.meta.extra)
    if lost:
        extra["resample_lost"] = ",".join(map(str, lost))
    meta = replace(sample.meta, mpp=target_mpp, extra=extra)
    return Sample(np.ascontiguousarray(image), inst.astype(np.int32, copy=False), cls.astype(np.uint8, copy=False),
                  meta)
