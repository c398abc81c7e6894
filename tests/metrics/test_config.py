"""config: the detection radius follows the magnification; thresholds are validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cellprobe.metrics.config import MetricsParams, radius_for_mpp


def test_radius_is_12_px_at_40x_and_6_px_at_20x():
    assert radius_for_mpp(0.25) == 12.0 and radius_for_mpp(0.5) == 6.0 and radius_for_mpp(None) == 12.0
    assert MetricsParams().detection_radius == 12.0
    assert MetricsParams(mpp=0.5).detection_radius == 6.0
    assert MetricsParams(radius=9, mpp=0.5).detection_radius == 9.0


@pytest.mark.parametrize("bad", [{"match_iou": 0.4}, {"radius": 0}, {"r2_crop": -1}, {"radius_px": 3}])
def test_invalid_params(bad):
    with pytest.raises(ValidationError):
        MetricsParams(**bad)
