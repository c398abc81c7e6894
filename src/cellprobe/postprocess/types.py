"""One cell type per instance: probability-weighted vote over the instance's pixels (CISCA, HoVer-Net).

The class probabilities of all pixels of an instance are summed and the class with the largest sum wins;
the background channel is left out of the vote, so every instance gets a class (CISCA falls back to the best
non-background class when background wins). Ties go to the lower class id.
"""

from __future__ import annotations

import numpy as np

from cellprobe.data.targets import compact_ids
from cellprobe.errors import InputError
from cellprobe.postprocess.label_steps import check_maps


def assign_types(inst: np.ndarray, type_prob: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """(class map (H, W) uint8, {instance id: class}) from an instance map and (C+1, H, W) probabilities."""
    inst = np.asarray(inst)
    if inst.ndim != 2 or not np.issubdtype(inst.dtype, np.integer):
        raise InputError(None, f"instance map must be a 2-D integer array, got {inst.shape} {inst.dtype}")
    type_prob = check_maps("type_prob", type_prob, shape=inst.shape)
    n_classes = type_prob.shape[0] - 1
    if not 1 <= n_classes <= 255:
        raise InputError(None, f"type_prob needs 2..256 channels (background + classes), got {n_classes + 1}")
    if inst.size and int(inst.min()) < 0:
        raise InputError(None, "instance map has negative ids")

    flat = inst.reshape(-1)
    where = np.flatnonzero(flat)
    cls_map = np.zeros(inst.shape, np.uint8)
    if where.size == 0:
        return cls_map, {}
    lab, k = compact_ids(flat[where].astype(np.int64, copy=False))
    probs = type_prob.reshape(n_classes + 1, -1)[1:, where]
    votes = np.stack([np.bincount(lab, weights=row, minlength=k + 1) for row in probs])
    winner = (np.argmax(votes[:, 1:], axis=0) + 1).astype(np.uint8)  # class of label 1..k

    cls_map.reshape(-1)[where] = winner[lab - 1]
    ids = np.zeros(k, np.int64)
    ids[lab - 1] = flat[where]  # every write to a slot carries the same id
    return cls_map, {int(i): int(c) for i, c in zip(ids, winner, strict=True)}
