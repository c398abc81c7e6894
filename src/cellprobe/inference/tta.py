"""Test-time augmentation over dihedral views: the network sees each view of a batch, and its outputs are
brought back to the original frame and averaged.

Probability maps (semantic, types) are averaged as probabilities and returned as their logarithm, so that a
softmax downstream gives the mean probabilities exactly. The distance maps need more than turning back: each
is the min-max normalised projection of a cell's pixels on a direction u, and a view with linear part A
turns the map of direction u into the map of direction Aᵀu of the original frame, which is ±(another of the
four directions). :func:`distance_channel_map` derives that channel permutation and sign for every view from
:data:`cellprobe.data.targets.DIRECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

import numpy as np
import torch

from cellprobe.data.targets import DIRECTIONS
from cellprobe.data.views import NUM_VIEWS, check_view, inverse_view, view_array

MapFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
PROBABILITY_KEYS = ("semantic", "types")


def view_matrix(view: int) -> np.ndarray:
    """The 2×2 linear part of ``view`` acting on (row, col) displacements: a counter-clockwise quarter turn
    sends (dr, dc) to (-dc, dr) (``np.rot90``), the horizontal flip sends it to (dr, -dc)."""
    view = check_view(view)
    turn = np.array([[0, -1], [1, 0]])
    a = np.linalg.matrix_power(turn, view % 4)
    return np.array([[1, 0], [0, -1]]) @ a if view >= 4 else a


@cache
def distance_channel_map(view: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``(source, sign)``: channel ``j`` of the original frame's distance maps is ``sign[j]`` times channel
    ``source[j]`` of the maps predicted on ``view`` (after turning them back spatially)."""
    a = view_matrix(view)
    dirs = [np.array(d) for d in DIRECTIONS]
    source, sign = [0] * len(dirs), [0.0] * len(dirs)
    for k, u in enumerate(dirs):
        back = a.T @ u  # the predicted map k measures the projection on this direction of the original frame
        for j, d in enumerate(dirs):
            for s in (1, -1):
                if np.array_equal(back, s * d):
                    source[j], sign[j] = k, float(s)
    return tuple(source), tuple(sign)


def unview_outputs(out: dict[str, torch.Tensor], view: int) -> dict[str, torch.Tensor]:
    """Raw outputs predicted on ``view`` of a batch, in the batch's own frame (distance channels remapped)."""
    inv = inverse_view(view)
    back = {k: view_array(v, inv) for k, v in out.items()}
    if "distance" in back:
        source, sign = distance_channel_map(view)
        d = back["distance"]
        back["distance"] = d[:, list(source)] * d.new_tensor(sign)[None, :, None, None]
    return back


def dihedral_tta(fn: MapFn, views: int) -> MapFn:
    """``fn`` averaged over the first ``views`` dihedral views (1: ``fn`` itself)."""
    if not 1 <= views <= NUM_VIEWS:
        raise ValueError(f"views must be in 1..{NUM_VIEWS}, got {views}")
    if views == 1:
        return fn

    def averaged(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return mean_outputs(unview_outputs(fn(view_array(batch, view).contiguous()), view) for view in range(views))

    return averaged


def mean_outputs(outputs: Iterable[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of several raw outputs of one batch (views, ensemble members): probability maps averaged as
    probabilities and returned as their logarithm, distance maps averaged as they are."""
    sums: dict[str, torch.Tensor] = {}
    n = 0
    for out in outputs:
        n += 1
        for key, value in out.items():
            value = value.float()
            value = value.softmax(1) if key in PROBABILITY_KEYS else value
            sums[key] = sums[key] + value if key in sums else value
    mean = {k: v / n for k, v in sums.items()}
    return {k: (v.clamp_min(1e-12).log() if k in PROBABILITY_KEYS else v) for k, v in mean.items()}
