"""HoVer-Net's post-processing (Graham et al. 2019), for the alternative hv target.

Steps, as in HoVer-Net's released code (re-implemented here on OpenCV/SciPy primitives):
foreground = P(fg) >= ``fg_threshold`` minus blobs below ``min_size`` px; the h and v maps are min-max
normalised over the image, differentiated with a ``sobel_ksize`` Sobel filter along their axis, and each
gradient is turned into an edge map 1 - minmax(gradient); the larger of the two, inside the foreground, is the
edge map. Markers = foreground minus edges >= ``edge_threshold``, holes filled, opened with an ellipse of side
``marker_open_size``, components below ``min_marker_size`` px dropped. The watershed floods
-blur((1 - edges) · foreground) from the markers inside the foreground.
"""

from __future__ import annotations

import cv2
import numpy as np

from cellprobe.postprocess.label_steps import check_maps, components, drop_small, fill_holes, flood
from cellprobe.postprocess.params import HoverParams


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def instances_from_hv(fg_prob: np.ndarray, hv: np.ndarray, params: HoverParams | None = None) -> np.ndarray:
    """Instance map (H, W) int32 from a (H, W) foreground probability and (2, H, W) HoVer-Net maps."""
    p = params or HoverParams()
    fg_prob = check_maps("fg_prob", fg_prob, ndim=2)
    hv = check_maps("hv", hv, 2, fg_prob.shape)

    fg = drop_small(components(fg_prob >= p.fg_threshold), p.min_size) > 0
    fg_f = fg.astype(np.float32)

    edges = np.zeros(fg.shape, np.float32)
    for axis, (dx, dy) in enumerate(((1, 0), (0, 1))):
        grad = cv2.Sobel(_minmax(hv[axis]), cv2.CV_32F, dx, dy, ksize=p.sobel_ksize)
        np.maximum(edges, 1.0 - _minmax(grad), out=edges)
    edges = np.clip(edges - (1.0 - fg_f), 0.0, None)

    relief = -cv2.GaussianBlur((1.0 - edges) * fg_f, (3, 3), 0)
    seeds = fill_holes(fg & (edges < p.edge_threshold))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (p.marker_open_size, p.marker_open_size))
    seeds = cv2.morphologyEx(seeds.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
    markers = drop_small(components(seeds & fg), p.min_marker_size)
    return drop_small(flood(relief, markers, fg), 1)
