from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellprobe.data import fixtures
from cellprobe.data.resample import lost_instances, resample
from cellprobe.data.sample import Sample, SampleMeta
from cellprobe.errors import InputError


def make(seed: int, mpp: float | None = 0.25, size: int = 64) -> Sample:
    image, inst, cls = fixtures.synthetic_patch(np.random.default_rng(seed), size, n_nuclei=15, radius=(1, 8))
    return Sample(image, inst, cls, SampleMeta("t", "p", "s", 0, mpp=mpp))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 500), st.sampled_from([0.5, 0.125, 0.3, 0.2]))
def test_no_id_invented_and_classes_kept(seed, target):
    s = make(seed)
    r = resample(s, target)
    factor = 0.25 / target
    assert r.image.shape == (round(64 * factor), round(64 * factor), 3) and r.meta.mpp == target
    before = dict(zip(s.inst.ravel().tolist(), s.cls.ravel().tolist(), strict=True))
    assert set(np.unique(r.inst).tolist()) <= set(before)
    for i in np.unique(r.inst):
        assert set(np.unique(r.cls[r.inst == i]).tolist()) == {before[int(i)]}
    lost = lost_instances(s.inst, r.inst)
    assert r.meta.extra.get("resample_lost", "") == ",".join(map(str, lost))
    if target < 0.25:  # enlarging never loses an instance
        assert not lost


def test_downscale_reports_lost_tiny_instance():
    s = make(1)
    inst = s.inst.copy()
    inst[0, 1] = 999  # a one-pixel instance on an odd column, dropped by 2× nearest downscaling
    cls = s.cls.copy()
    cls[0, 1] = 1
    r = resample(Sample(s.image, inst, cls, s.meta), 0.5)
    assert "999" in r.meta.extra["resample_lost"].split(",")


def test_needs_mpp_and_identity():
    with pytest.raises(InputError, match="µm/px unknown"):
        resample(make(0, mpp=None), 0.5)
    s = make(0)
    same = resample(s, 0.25)
    assert same.inst is s.inst and same.meta.mpp == 0.25
    assert resample(replace(s, meta=replace(s.meta, mpp=0.5)), 0.25).inst.shape == (128, 128)
