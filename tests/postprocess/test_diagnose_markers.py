"""benchmarks/diagnose_markers.py: its oracle variants recover the truth from maps that have lost it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from tests.postprocess.oracle import discs, oracle_maps

from cellprobe.metrics import score_maps
from cellprobe.postprocess.params import PostprocessParams

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "diagnose_markers.py"


def _module():
    spec = importlib.util.spec_from_file_location("diagnose_markers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pq(truth: np.ndarray, pred: np.ndarray) -> float:
    ones = lambda x: (x > 0).astype(np.uint8)  # noqa: E731
    return score_maps([truth], [ones(truth)], [pred], [ones(pred)], num_classes=1).summary["pq"]


def test_oracle_variants_recover_what_the_maps_lost():
    diag = _module()
    inst = discs()  # two touching discs and a separate one
    semantic, distance, _, _ = oracle_maps(inst, (inst > 0).astype(np.int64))
    params = PostprocessParams(min_size=3)
    merged = {"semantic": semantic.copy(), "distance": np.zeros_like(distance)}  # no distance cue, no boundary
    merged["semantic"][2] += merged["semantic"][1]
    merged["semantic"][1] = 0
    assert diag.tuned(merged, inst, params).max() == 2  # the touching pair comes out as one nucleus
    assert _pq(inst, diag.true_markers(merged, inst, params)) > 0.9
    shrunk = {"semantic": oracle_maps(ndi.binary_erosion(inst > 0, iterations=2) * inst,
                                      np.zeros_like(inst, dtype=np.int64))[0], "distance": distance}
    assert _pq(inst, diag.tuned(shrunk, inst, params)) < 0.8  # outlines 2 px too tight
    assert _pq(inst, diag.true_foreground(shrunk, inst, params)) > 0.9
    for name, variant in diag.VARIANTS.items():
        out = variant({"semantic": semantic, "distance": distance}, inst, params)
        assert out.shape == inst.shape and out.dtype == np.int32, name
