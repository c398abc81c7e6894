"""Instances from the decoder's semantic and distance maps (CISCA-style marker-controlled watershed).

Steps (``semantic_prob`` channels: background, boundary, body, as in :mod:`cellprobe.data.targets`):

1. Foreground: P(boundary) + P(body) >= ``fg_threshold``; background specks smaller than ``max_hole_size``
   inside it are filled.
2. Contours from the distance maps: each map rises from -1 to +1 across a cell along its direction and falls
   where one cell ends and the next begins. The contour strength of a pixel is the largest fall of any map
   between the pixels ``contour_step`` px before and after it along that map's direction, halved and floored
   at 0 (about 1 on both sides of a cell-cell border, 0 inside a cell).
3. Markers: 4-connected components of {P(body) >= ``body_threshold``} minus the contours, inside the
   foreground; components below ``min_marker_size`` px are dropped.
4. Watershed of the relief ``1 - P(body) + contour_weight * contour`` from the markers inside the
   foreground (:func:`cellprobe.postprocess.label_steps.flood`); instances below ``min_size`` px are dropped and
   the rest numbered 1..K.

CISCA (Vadori et al. 2024) derives its contours from Sobel-like responses of the distance maps after min-max
normalising them over the whole image, and grows markers with erosion and reconstruction; the signed fall used
here needs no per-image normalisation, so its thresholds mean the same on every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellprobe.data.targets import BODY, BOUNDARY, DIRECTIONS
from cellprobe.postprocess.label_steps import check_maps, components, drop_small, fill_holes, flood
from cellprobe.postprocess.params import PostprocessParams


def _window(n: int, margin: int, shift: int) -> slice:
    return slice(margin + shift, n - margin + shift)


def contour_strength(distance: np.ndarray, step: int = 1) -> np.ndarray:
    """(H, W) float32: half the largest fall of any distance map across ``2 * step`` px along its direction,
    floored at 0. Pixels closer than ``step`` to the image border along a direction get nothing from it."""
    distance = check_maps("distance", distance, len(DIRECTIONS))
    _, h, w = distance.shape
    out = np.zeros((h, w), np.float32)
    fall = np.empty((h, w), np.float32)
    for ch, (dr, dc) in enumerate(DIRECTIONS):
        mr, mc = abs(dr) * step, abs(dc) * step
        if 2 * mr >= h or 2 * mc >= w:
            continue
        here = (_window(h, mr, 0), _window(w, mc, 0))
        before = distance[ch, _window(h, mr, -dr * step), _window(w, mc, -dc * step)]
        after = distance[ch, _window(h, mr, dr * step), _window(w, mc, dc * step)]
        np.subtract(before, after, out=fall[here])  # views: no temporary arrays
        np.maximum(out[here], fall[here], out=out[here])
    out *= 0.5
    return out


@dataclass(frozen=True)
class WatershedInputs:
    """What the watershed is built from (steps 1-3 of the module docstring): ``foreground`` (bool),
    ``body`` (P(body), float32), ``contour`` (contour strength) and ``seeds`` (the marker mask, before its
    components are labelled). Separate so that a diagnosis can swap one of them for the truth."""

    foreground: np.ndarray
    body: np.ndarray
    contour: np.ndarray
    seeds: np.ndarray


def watershed_inputs(semantic_prob: np.ndarray, distance: np.ndarray, p: PostprocessParams) -> WatershedInputs:
    """Steps 1-3 on (3, H, W) class probabilities and (4, H, W) distance maps."""
    semantic_prob = check_maps("semantic_prob", semantic_prob, 3)
    distance = check_maps("distance", distance, len(DIRECTIONS), semantic_prob.shape[1:])
    body = semantic_prob[BODY]
    fg = fill_holes((semantic_prob[BOUNDARY] + body) >= p.fg_threshold, p.max_hole_size)
    contour = contour_strength(distance, p.contour_step)
    seeds = fg & (body >= p.body_threshold) & (contour < p.contour_threshold)
    return WatershedInputs(fg, body, contour, seeds)


def grow_markers(markers: np.ndarray, inputs: WatershedInputs, p: PostprocessParams) -> np.ndarray:
    """Step 4: flood the relief from labelled ``markers`` (inside the foreground), drop small instances."""
    relief = 1.0 - inputs.body.astype(np.float64)  # skimage floods float64; converting here saves a copy there
    if p.contour_weight:
        relief += p.contour_weight * inputs.contour
    return drop_small(flood(relief, markers, inputs.foreground), p.min_size)


def instances_from_maps(semantic_prob: np.ndarray, distance: np.ndarray,
                        params: PostprocessParams | None = None) -> np.ndarray:
    """Instance map (H, W) int32 (0 = background, 1..K) from (3, H, W) class probabilities and (4, H, W)
    distance maps; see the module docstring for the steps."""
    p = params or PostprocessParams()
    inputs = watershed_inputs(semantic_prob, distance, p)
    return grow_markers(drop_small(components(inputs.seeds), p.min_marker_size), inputs, p)
