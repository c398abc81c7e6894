"""config: the detection radius follows the magnification; thresholds are validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cellprobe.metrics.metric_params import MetricsParams, radius_for_mpp


def test_radius_is_12_px_at_40x_and_6_px_at_20x():
    assert radius_for_mpp(0.25) == 12.0 and radius_for_mpp(0.5) == 6.0 and radius_for_mpp(None) == 12.0
    assert MetricsParams().detection_radius == 12.0
    assert MetricsParams(mpp=0.5).detection_radius == 6.0
    assert MetricsParams(radius=9, mpp=0.5).detection_radius == 9.0


@pytest.mark.parametrize("bad", [{"match_iou": 0.4}, {"radius": 0}, {"r2_crop": -1}, {"radius_px": 3}])
def test_invalid_params(bad):
    with pytest.raises(ValidationError):
        MetricsParams(**bad)


@pytest.mark.parametrize(
    "bad",
    [{"mpp": float("inf")}, {"mpp": float("nan")}, {"radius": float("inf")}, {"radius": float("nan")},
     {"r2_crop": float("inf")}, {"r2_crop": float("nan")}, {"match_iou": float("nan")}],
)
def test_non_finite_values_are_refused(bad):
    """mpp=inf used to give a radius of 0 px and radius=inf to pair everything."""
    with pytest.raises(ValidationError, match="finite number"):
        MetricsParams(**bad)


def test_an_mpp_outside_a_microscopes_range_is_refused():
    """1e-320 overflowed the radius to infinity; 1e-300 (the 30th probe) gave 3e300 px, pairing every nucleus."""
    for mpp in (1e-320, 1e-300, 0.005, 101.0):
        with pytest.raises(ValidationError, match=r"(greater|less) than or equal to"):
            MetricsParams(mpp=mpp)
    assert MetricsParams(mpp=0.01).detection_radius == 300.0 and MetricsParams(mpp=100).detection_radius == 0.03
    assert MetricsParams(mpp=0.5, radius=5).detection_radius == 5.0
