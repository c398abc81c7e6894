"""Official nucleus segmentation/classification metrics (PanNuke, CoNIC, HoVer-Net), computed fast.

Per-image sufficient statistics first (one DataFrame row per image), then summaries recomputed from rows by
:func:`aggregate_conic` / :func:`aggregate_pannuke` (the benchmark's bootstrap reuses them on resampled rows).
The formulas are listed in :mod:`cellprobe.metrics.aggregate`; the per-image columns in
:mod:`cellprobe.metrics.image`.

Input: bad input is one :class:`~cellprobe.errors.InputError` naming the file and image; the number of classes
comes from the declared class list or the truth, never the predictions; the truth is checked as strictly as the
dataset readers check it, predictions only for what the metrics need (see :mod:`cellprobe.metrics.inputs`).

Detection radius: HoVer-Net pairs centroids within 12 px at 40× (0.25 µm/px), i.e. 3 µm; give ``mpp`` (6 px at
20×, e.g. CoNIC's 0.5 µm/px) or ``radius`` in pixels.

Where the official scripts are undefined (they crash or divide 0 by 0) or depend on their file formats:
- AJI, AJI+, DICE1, DICE2 of an image with neither truth nor prediction are NaN and left out of the means;
  with one side empty they are 0; DICE2 with instances but no overlapping pair is 0.
- Detection: centroids are the mean pixel coordinates of each instance and its type the pixel majority (ties to
  the smaller class id, class 0 only without classified pixels); an image without nuclei adds no point
  (HoVer-Net's script inserts a placeholder centroid at (0, 0) of type 0 there).
- PanNuke: tissues are those present in types.npy (the script iterates over its fixed list of 19 names, so
  other names are ignored there); an image's class counts as empty when its channel has no instance.
"""

from cellprobe.metrics.aggregate import aggregate_conic, aggregate_pannuke, pq_terms
from cellprobe.metrics.image import conic_image_row, pannuke_image_row
from cellprobe.metrics.metric_params import DETECTION_RADIUS_UM, MetricsParams, radius_for_mpp
from cellprobe.metrics.score import (
    PANNUKE_CLASSES,
    ConicAccumulator,
    ScoreResult,
    score_conic,
    score_maps,
    score_pannuke,
)

__all__ = [
    "DETECTION_RADIUS_UM",
    "PANNUKE_CLASSES",
    "ConicAccumulator",
    "MetricsParams",
    "ScoreResult",
    "aggregate_conic",
    "aggregate_pannuke",
    "conic_image_row",
    "pannuke_image_row",
    "pq_terms",
    "radius_for_mpp",
    "score_conic",
    "score_maps",
    "score_pannuke",
]
