"""Dihedral augmentation views, shared by feature caching and training on cached features.

``view`` in 0..7: ``k = view % 4`` counter-clockwise quarter turns (``np.rot90`` / ``torch.rot90`` over the
(row, column) axes), then a horizontal flip (columns reversed) if ``view >= 4``. Features cached for view ``v``
are the encoder's output on ``apply_view(image, v)``; the targets must go through the same view.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

NUM_VIEWS = 8
T = TypeVar("T")


def check_view(view: int) -> int:
    if not isinstance(view, int | np.integer) or not 0 <= int(view) < NUM_VIEWS:
        raise ValueError(f"view must be an integer in 0..{NUM_VIEWS - 1}, got {view!r}")
    return int(view)


def apply_view(x: T, view: int, channels_last: bool = False) -> T:
    """Apply dihedral ``view`` to a numpy array or torch tensor.

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


def apply_view_hw(array: np.ndarray, view: int) -> np.ndarray:
    """``apply_view`` for numpy arrays with the spatial axes first: (H, W) label maps and (H, W, C) images."""
    view = check_view(view)
    out = np.rot90(array, view % 4, axes=(0, 1))
    return np.flip(out, axis=1) if view >= 4 else out
