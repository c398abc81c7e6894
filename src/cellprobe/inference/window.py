"""Sliding-window prediction of the decoder's maps on images of any size.

Windows overlap by ``overlap`` pixels. In each overlap the seam lies in its middle: a window's weight is ~0 in
the outer part of the overlap (where nuclei cut by the window's edge look cut to the network), ramps across a
band of ``blend`` pixels around the seam, and is 1 beyond. A nucleus crossing the seam is therefore predicted
by windows that each see it whole (up to about ``(overlap + blend) / 2`` px across), and post-processing runs
once on the stitched maps: a nucleus on a window border is one nucleus, never duplicated by two windows, never
cut by one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from pydantic import Field, model_validator

from cellprobe.config import StrictModel, key_error
from cellprobe.decoder.model import INPUT_MULTIPLE

#: the most network windows in one pass: 4096 windows of 256² px are 3 GiB of input alone (a typo such as 1e8
#: is refused, not met as a MemoryError)
MAX_WINDOWS = 4096

MapFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


class WindowConfig(StrictModel):
    """``tile``: window side in pixels (a multiple of the decoder's input multiple, 32); ``overlap``: pixels shared by neighbouring windows;
    ``blend``: width of the cross-fade around each seam (0: a hard seam); ``batch_size``: windows per pass."""

    tile: int = Field(256, ge=INPUT_MULTIPLE)
    overlap: int = Field(64, ge=0)
    blend: int = Field(16, ge=0)
    batch_size: int = Field(4, ge=1, le=MAX_WINDOWS)

    @model_validator(mode="after")
    def _check(self) -> WindowConfig:
        if self.tile % INPUT_MULTIPLE:
            raise ValueError(f"tile must be a multiple of {INPUT_MULTIPLE}, got {self.tile}")
        if self.overlap >= self.tile // 2:
            raise ValueError(f"overlap must be less than half the tile ({self.tile // 2}), got {self.overlap}")
        if self.blend > self.overlap:
            raise key_error("overlap", f"overlap {self.overlap} is below the {self.blend} px over which windows "
                                       f"cross-fade at their seams: give at least {self.blend}")
        return self


def window_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``tile`` covering ``[0, length)`` with at least ``overlap`` shared pixels;
    the last window ends exactly at ``length`` (``length >= tile``)."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


#: weight floor: keeps every pixel covered (weights normalise away) while a window's edge adds nothing visible
_FLOOR = 1e-12


def _ramp(tile: int, overlap: int, blend: int, low: bool, high: bool) -> np.ndarray:
    """1-D weights: ~0 in the outer ``(overlap - blend) / 2`` px of an inner edge, a linear ramp over ``blend``
    px, then 1."""
    pos = np.arange(tile, dtype=np.float32) + 0.5  # pixel centres
    start = (overlap - blend) / 2.0
    w = np.ones(tile, dtype=np.float32)
    for inner, dist in ((low, pos), (high, tile - pos)):
        if inner and overlap > 0:
            edge = (dist - start) / blend if blend > 0 else (dist > start).astype(np.float32)
            w = np.minimum(w, np.clip(edge, _FLOOR, 1.0))
    return w


def blend_weights(tile: int | tuple[int, int], overlap: int, blend: int, y: int, x: int, height: int,
                  width: int) -> np.ndarray:
    """(th, tw) weights of the window at (y, x) (``tile``: a side, or (th, tw)): ramps only on sides that have a
    neighbouring window."""
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    wy = _ramp(th, overlap, blend, y > 0, y + th < height)
    wx = _ramp(tw, overlap, blend, x > 0, x + tw < width)
    return np.outer(wy, wx)


def probabilities(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The decoder's raw outputs as maps: class probabilities (softmax) and the distance maps as they are."""
    return {
        "semantic": out["semantic"].float().softmax(1),
        "distance": out["distance"].float(),
        "types": out["types"].float().softmax(1),
    }


def predict_batch(images: np.ndarray, fn: MapFn, device: torch.device | str = "cpu",
                  batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Maps of a (B, h, w, 3) uint8 batch (sides multiples of the decoder's input multiple): the one place
    where images become network input and outputs become probability maps, (B, C, h, w) arrays.
    ``batch_size``: run a fuller batch padded to that many with copies of the last image (their maps are
    dropped), so that an image's maps do not depend on how many share its pass."""
    n = len(images)
    if batch_size is not None and n < batch_size:
        images = np.concatenate([images, np.repeat(images[-1:], batch_size - n, axis=0)])
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    with torch.no_grad():
        return {k: v[:n].cpu().numpy() for k, v in probabilities(fn(tensor)).items()}


def predict_maps(image: np.ndarray, fn: MapFn, config: WindowConfig | None = None,
                 device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """Maps of an (H, W, 3) uint8 image: ``semantic`` (3,H,W) and ``types`` (C+1,H,W) probabilities,
    ``distance`` (4,H,W). ``fn`` maps a (B,3,t,t) float batch in [0,1] to the decoder's raw outputs.

    A side shorter than the tile is predicted in one window, padded to a multiple of the decoder's input
    multiple; the padding is cropped off again.
    """
    cfg = config or WindowConfig()
    h, w = image.shape[:2]
    # a side shorter than the tile gets one window of its own size rounded up (less padding)
    # at least two cells of the coarsest pyramid level per side (the neck's normalisation needs more than one)
    m = INPUT_MULTIPLE
    th, tw = (min(cfg.tile, max(2 * m, -(-side // m) * m)) for side in (h, w))
    ph, pw = max(h, th), max(w, tw)
    img = image
    if (ph, pw) != (h, w):
        mode = "reflect" if ph - h < h and pw - w < w else "edge"  # reflect needs the pad shorter than the side
        img = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode=mode)
    overlap = cfg.overlap
    positions = [(y, x) for y in window_starts(ph, th, overlap) for x in window_starts(pw, tw, overlap)]
    sums: dict[str, np.ndarray] = {}
    weight_sum = np.zeros((ph, pw), dtype=np.float32)
    for i in range(0, len(positions), cfg.batch_size):
        chunk = positions[i:i + cfg.batch_size]
        maps = predict_batch(np.stack([img[y:y + th, x:x + tw] for y, x in chunk]), fn, device)
        for j, (y, x) in enumerate(chunk):
            wgt = blend_weights((th, tw), overlap, cfg.blend, y, x, ph, pw)
            weight_sum[y:y + th, x:x + tw] += wgt
            for key, value in maps.items():
                acc = sums.setdefault(key, np.zeros((value.shape[1], ph, pw), dtype=np.float32))
                acc[:, y:y + th, x:x + tw] += value[j] * wgt
    return {k: (v / weight_sum)[:, :h, :w] for k, v in sums.items()}
