from __future__ import annotations

import pytest
from pydantic import ValidationError

from cellprobe.config import parse_config
from cellprobe.errors import InputError
from cellprobe.postprocess import DEFAULT_GRID, HoverParams, PostprocessParams


def test_defaults_round_trip_through_json():
    p = PostprocessParams()
    assert PostprocessParams.model_validate_json(p.model_dump_json()) == p
    assert set(DEFAULT_GRID) <= set(PostprocessParams.model_fields)


def test_unknown_key_and_bad_values_are_rejected():
    with pytest.raises(InputError, match="fg_treshold"):
        parse_config(PostprocessParams, {"fg_treshold": 0.5}, "postprocess.json")
    with pytest.raises(ValidationError):
        PostprocessParams(fg_threshold=1.5)
    with pytest.raises(ValidationError):
        PostprocessParams(min_size=0)
    with pytest.raises(ValidationError, match="odd"):
        HoverParams(sobel_ksize=20)
