"""Label-map steps shared by both post-processings: input checks, hole filling, marker flooding, size filter."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.segmentation import watershed

from cellprobe.errors import InputError


def check_maps(name: str, maps: np.ndarray, channels: int | None = None, shape: tuple[int, int] | None = None,
               ndim: int = 3) -> np.ndarray:
    """``maps`` as float32 of shape (channels, H, W) (any channel count when None), or (H, W) when ndim=2;
    ``shape``: the (H, W) it must have."""
    maps = np.asarray(maps)
    if maps.ndim != ndim or (channels is not None and maps.shape[0] != channels):
        layout = "(H, W)" if ndim == 2 else f"({channels or 'C'}, H, W)"
        raise InputError(None, f"{name} must have shape {layout}, got {maps.shape}")
    if not (np.issubdtype(maps.dtype, np.floating) or np.issubdtype(maps.dtype, np.integer)):
        raise InputError(None, f"{name} must be numeric, got {maps.dtype}")
    if shape is not None and maps.shape[-2:] != tuple(shape):
        raise InputError(None, f"{name} is {maps.shape[-2:]} but the other maps are {tuple(shape)}")
    return maps.astype(np.float32, copy=False)


def components(mask: np.ndarray) -> np.ndarray:
    """4-connected components of a boolean mask, int32 labels 1..n (OpenCV: about 2x faster than SciPy)."""
    _, labels = cv2.connectedComponents(mask.astype(np.uint8, copy=False), connectivity=4, ltype=cv2.CV_32S)
    return labels


def fill_holes(mask: np.ndarray, max_size: int | None = None) -> np.ndarray:
    """``mask`` with its holes (background components not touching the image border) set to foreground;
    with ``max_size``, only holes smaller than that many px. (``scipy.ndimage.binary_fill_holes`` does the
    unbounded case ~10x slower.)"""
    if max_size is not None and max_size <= 1:
        return mask
    holes = components(~mask)
    fill = np.ones(int(holes.max()) + 1, bool) if max_size is None else np.bincount(holes.ravel()) < max_size
    fill[0] = False
    for edge in (holes[0], holes[-1], holes[:, 0], holes[:, -1]):
        fill[edge] = False
    return mask | fill[holes]


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Remove labels smaller than ``min_size`` px and renumber the rest 1..K in id order (int32)."""
    counts = np.bincount(labels.ravel())
    keep = counts >= min_size
    keep[0] = False
    lut = np.zeros(counts.size, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def flood(relief: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Marker-controlled watershed of ``relief`` inside ``mask`` (4-connectivity): int32 labels of ``markers``.

    skimage's watershed queues every marker pixel; the inside of a marker (pixels whose four neighbours are in
    it too) can only ever take that marker's label, so it is left out of the flood and copied back, which
    saves about a fifth of the time here. Only the order among equal-relief pixels can differ from a plain
    call. ``markers`` (4-connected components) must lie inside ``mask``; parts of it without a marker stay 0.
    """
    inside = cv2.erode((markers > 0).astype(np.uint8), _CROSS, borderType=cv2.BORDER_CONSTANT,
                       borderValue=0) > 0
    out = watershed(relief, np.where(inside, 0, markers), mask=mask & ~inside).astype(np.int32, copy=False)
    out[inside] = markers[inside]
    return out
