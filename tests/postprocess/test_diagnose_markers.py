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


def test_ladder_split_cuts_a_merged_pair_only_where_body_dips():
    diag = _module()
    inst = discs()
    semantic, distance, _, _ = oracle_maps(inst, (inst > 0).astype(np.int64))
    params = PostprocessParams(min_size=3, body_threshold=0.5)
    merged = {"semantic": semantic.copy(), "distance": np.zeros_like(distance)}
    merged["semantic"][2] += merged["semantic"][1]
    merged["semantic"][1] = 0
    assert diag.ladder_split(merged, inst, params).max() == 2  # a flat body map gives no cut to find
    seam = ndi.binary_dilation(inst == 1, iterations=2) & ndi.binary_dilation(inst == 2, iterations=2)
    dipped = {"semantic": merged["semantic"].copy(), "distance": merged["distance"]}
    dipped["semantic"][2][seam] = 0.65  # above the tuned threshold, below 0.5 + 0.2
    assert diag.tuned(dipped, inst, params).max() == 2
    assert _pq(inst, diag.ladder_split(dipped, inst, params)) > 0.9


def test_outline_stats_see_shape_errors_not_size_bias():
    diag = _module()
    inst = discs()
    same = diag.outline_stats([inst], [inst])
    assert same["pairs"] == 3 and same["iou"] == 1.0 and same["ratio"] == 1.0 and same["extra"] == same["missed"] == 0
    shifted = diag.outline_stats([inst], [np.roll(inst, 2, axis=1)])  # same sizes, outlines moved
    assert shifted["ratio"] == 1.0 and shifted["extra"] > 0.1 and shifted["missed"] > 0.1
    grown = diag.outline_stats([inst], [ndi.grey_dilation(inst, size=3)])
    assert grown["ratio"] > 1.1 and grown["missed"] < grown["extra"]
