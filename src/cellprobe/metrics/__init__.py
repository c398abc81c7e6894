"""Official nucleus segmentation/classification metrics (PanNuke, CoNIC, HoVer-Net), computed fast.

Per-image sufficient statistics first (one DataFrame row per image), then summaries recomputed from rows by
:func:`aggregate_conic` / :func:`aggregate_pannuke` (the benchmark's bootstrap reuses them on resampled rows).
"""

from cellprobe.metrics.aggregate import aggregate_conic, aggregate_pannuke, pq_terms
from cellprobe.metrics.config import DETECTION_RADIUS_UM, MetricsParams, radius_for_mpp
from cellprobe.metrics.image import conic_image_row, pannuke_image_row
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
