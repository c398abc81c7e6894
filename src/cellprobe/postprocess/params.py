"""Every threshold of post-processing, in validated models that a run folder stores (``postprocess.json``).

Defaults follow the method's published choices where they exist (CISCA for the distance-map watershed,
HoVer-Net for its own maps) and are re-fitted on the validation split by :func:`cellprobe.postprocess.tune_params`.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from cellprobe.config import StrictModel


class PostprocessParams(StrictModel):
    """Thresholds of :func:`cellprobe.postprocess.instances_from_maps`.

    ``fg_threshold``: a pixel is foreground when P(boundary) + P(body) >= it.
    ``body_threshold``: marker pixels need P(body) >= it.
    ``contour_threshold``: marker pixels need a distance-map contour strength below it. The strength is the
    largest drop of any of the four maps across ``2 * contour_step`` px along its own direction, halved: about 1
    where two cells meet (the maps fall from +1 to -1), 0 or below inside a cell (they rise).
    ``contour_weight``: weight of the contour strength in the watershed relief (added to 1 - P(body)).
    ``min_marker_size`` / ``min_size``: markers / final instances smaller than this (px) are dropped.
    ``max_hole_size``: holes of the foreground mask (background enclosed by it) smaller than this (px) are
    filled.
    """

    fg_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    body_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    contour_threshold: float = Field(0.5, gt=0.0, le=1.0)
    contour_step: int = Field(1, ge=1, le=8)
    # at most 1000: beyond, 1 - P(body) is lost in the rounding of the relief (and past ~1e38 the float32
    # contour strength times it overflows to inf and NaN)
    contour_weight: float = Field(1.0, ge=0.0, le=1000.0)
    min_marker_size: int = Field(3, ge=1)
    min_size: int = Field(3, ge=1)
    max_hole_size: int = Field(8, ge=0)


class HoverParams(StrictModel):
    """Thresholds of :func:`cellprobe.postprocess.instances_from_hv` (HoVer-Net's published values).

    ``fg_threshold`` on the foreground probability; ``sobel_ksize``: Sobel kernel of the hv-map gradients
    (odd, <= 31); ``edge_threshold``: normalised gradient above which a pixel is an edge (not a marker);
    ``marker_open_size``: side of the elliptic opening applied to the markers; ``min_marker_size`` and
    ``min_size``: markers / foreground blobs smaller than this (px) are dropped.
    """

    fg_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    sobel_ksize: int = Field(21, ge=1, le=31)
    edge_threshold: float = Field(0.4, gt=0.0, lt=1.0)
    marker_open_size: int = Field(5, ge=1, le=255)  # OpenCV's kernel sizes are C ints
    min_marker_size: int = Field(10, ge=1)
    min_size: int = Field(10, ge=1)

    @field_validator("sobel_ksize")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd (OpenCV's Sobel kernel sizes are 1, 3, 5, ..., 31)")
        return value


#: values searched by :func:`cellprobe.postprocess.tune_params` when none are given: every parameter. Wide on
#: purpose: decoders trained briefly (or on weak encoders) give soft distance maps, whose contours only show with
#: a long step and a low threshold; large marker sizes and contour weights undo over-splitting (on CoNSeP with
#: frozen Lite0 they were worth +0.011 validation PQ over the first five parameters alone, BENCHMARKS.md run h).
#: The coordinate search tries about 40 settings a round.
DEFAULT_GRID: dict[str, list] = {
    "fg_threshold": [0.3, 0.4, 0.5, 0.6, 0.7],
    "body_threshold": [0.3, 0.4, 0.5, 0.6, 0.7],
    "contour_threshold": [0.05, 0.1, 0.2, 0.3, 0.5, 0.7],
    "contour_step": [1, 2, 3, 4, 6],
    "contour_weight": [0.0, 0.5, 1.0, 2.0, 4.0],
    "min_marker_size": [3, 10, 20, 40],
    "min_size": [3, 10, 20, 30, 50],
    "max_hole_size": [0, 8, 32, 128],
}
