"""Thresholds of the metrics, in one validated model.

The pairing threshold and the detection radius are the two numbers every published table depends on; they
live here (not as literals in the code) so that a run folder records them with its results. Every value must
be a finite number (NaN and infinity are refused), and ``mpp`` a microscope's (:data:`~cellprobe.data.info.MPP_RANGE`).
"""

from __future__ import annotations

from pydantic import Field

from cellprobe.config import StrictModel
from cellprobe.data.info import MPP_RANGE

#: HoVer-Net pairs centroids within 12 px at 40× (0.25 µm/px), i.e. 3 µm; 6 px at 20× (0.5 µm/px).
DETECTION_RADIUS_UM = 3.0
#: Pixel size assumed when neither a radius nor the data's µm/px is given (40×, CoNSeP / PanNuke).
DEFAULT_MPP = 0.25


def radius_for_mpp(mpp: float | None) -> float:
    """Detection radius in pixels for data at ``mpp`` µm/px (12 px at 40×, 6 px at 20×)."""
    return DETECTION_RADIUS_UM / (DEFAULT_MPP if mpp is None else mpp)


class MetricsParams(StrictModel):
    """Every threshold the per-image statistics depend on.

    ``match_iou``: a true and a predicted instance pair when IoU > match_iou (strict). Values >= 0.5 make the
    pairing unique without any assignment step, which is what the official PanNuke/CoNIC/HoVer-Net code uses.
    ``radius``: detection pairing radius in pixels (distance <= radius); ``None`` means
    :func:`radius_for_mpp` of ``mpp``.
    ``r2_crop``: side of the central crop in which nuclei are counted for R² (CoNIC challenge: 224);
    ``None`` counts in the whole patch.
    """


    match_iou: float = Field(0.5, ge=0.5, lt=1.0, allow_inf_nan=False)
    # a radius past a patch pairs nuclei nowhere near each other (the truth's with any prediction)
    radius: float | None = Field(None, gt=0, le=1000, allow_inf_nan=False)
    mpp: float | None = Field(None, ge=MPP_RANGE[0], le=MPP_RANGE[1], allow_inf_nan=False)
    r2_crop: int | None = Field(None, gt=0)

    @property
    def detection_radius(self) -> float:
        return self.radius if self.radius is not None else radius_for_mpp(self.mpp)
