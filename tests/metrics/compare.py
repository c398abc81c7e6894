"""Comparing summaries: exact equality where NaN equals NaN, and closeness to a reference to 1e-9."""

from __future__ import annotations

import math

import numpy as np


def same(a, b) -> bool:
    """Exact equality of nested dicts/lists/numbers, with NaN == NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_close(got: dict, ref: dict, atol: float = 1e-9, skip=("per_tissue", "image_bpq", "image_class_pq")):
    """Every key of the reference summary matches ``got`` to ``atol`` (NaN where the reference has NaN)."""
    for key, value in ref.items():
        if key in skip:
            continue
        assert np.allclose(np.asarray(got[key], float), np.asarray(value, float), rtol=0, atol=atol,
                           equal_nan=True), (key, got[key], value)
