"""Dihedral views (the 8 symmetries of a square), shared by augmentation, feature caching, cached training and
test-time augmentation.

``view`` in 0..7: ``k = view % 4`` counter-clockwise quarter turns over the (row, column) axes, then a
horizontal flip (columns reversed) if ``view >= 4``. Features cached for view ``v`` are the encoder's output on
``view_array(image, v)``; the targets go through the same view, and a prediction made on view ``v`` comes back
with :func:`inverse_view`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import numpy as np

from cellprobe.data.sample import Sample

NUM_VIEWS = 8
T = TypeVar("T")


def check_view(view: int) -> int:
    if not isinstance(view, int | np.integer) or not 0 <= int(view) < NUM_VIEWS:
        raise ValueError(f"view must be an integer in 0..{NUM_VIEWS - 1}, got {view!r}")
    return int(view)


def inverse_view(view: int) -> int:
    """The view undoing ``view``: quarter turns k → 4 - k; a turn followed by a flip is its own inverse."""
    view = check_view(view)
    return (4 - view) % 4 if view < 4 else view


def view_array(x: T, view: int, channels_last: bool = False) -> T:
    """Dihedral ``view`` of a numpy array or torch tensor (a view of the input where the library allows).

    Spatial axes are the last two (``(..., H, W)``: CHW tensors, label maps), or the two before the last with
    ``channels_last=True`` (``(H, W, C)`` images).
    """
    view = check_view(view)
    axes = (-3, -2) if channels_last else (-2, -1)
    if isinstance(x, np.ndarray):
        out = np.rot90(x, view % 4, axes=axes)
        return np.flip(out, axis=axes[1]) if view >= 4 else out
    import torch

    out = torch.rot90(x, view % 4, dims=axes)
    return torch.flip(out, dims=(axes[1],)) if view >= 4 else out


def apply_view(x: T, view: int) -> T:
    """Dihedral ``view`` of a :class:`Sample`, or of (H, W) label maps / (H, W, C) images (one array or a
    tuple/list of them), as contiguous arrays."""
    if isinstance(x, Sample):
        return replace(x, image=apply_view(x.image, view), inst=apply_view(x.inst, view), cls=apply_view(x.cls, view))
    if isinstance(x, tuple | list):
        return type(x)(apply_view(a, view) for a in x)
    arr = np.asarray(x)
    if arr.ndim not in (2, 3):
        raise ValueError(f"apply_view takes (H, W) or (H, W, C) arrays, got shape {arr.shape}")
    return np.ascontiguousarray(view_array(arr, view, channels_last=arr.ndim == 3))


def invert_view(x: T, view: int) -> T:
    """Undo :func:`apply_view` (e.g. bring a test-time-augmented prediction back to the original frame)."""
    return apply_view(x, inverse_view(view))
