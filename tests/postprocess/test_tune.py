from __future__ import annotations

import numpy as np
import pytest

from cellprobe.errors import InputError
from cellprobe.postprocess import MapPrediction, PostprocessParams, tune_params

from .oracle import discs, oracle_maps


def dataset(n: int = 3, body_prob: float = 0.45):
    """Predictions whose cell-body probability is only ``body_prob``: the default body threshold (0.5)
    finds no marker, a lower one recovers every cell."""
    preds, truths = [], []
    for k in range(n):
        inst = discs(centres=((20, 20 + k), (20, 33 + k), (45, 40 - k)))
        cls = np.where(inst == 3, 2, np.where(inst > 0, 1, 0)).astype(np.uint8)
        semantic, distance, _, types = oracle_maps(inst, cls)
        body = semantic[2] > 0
        semantic[2][body] = body_prob
        semantic[1][body] = 1 - body_prob
        preds.append(MapPrediction(semantic, distance, types[:3]))
        truths.append((inst, cls))
    return preds, truths


def test_finds_the_threshold_that_works():
    preds, truths = dataset()
    result = tune_params(preds, truths, {"body_threshold": [0.5, 0.4], "min_size": [3, 10]})
    assert result.best.body_threshold == 0.4 and result.best.min_size == 3  # first of the tied points
    assert result.score > 0.99 and result.metric == "pq"
    assert list(result.table.columns) == ["body_threshold", "min_size", "pq"]
    assert len(result.table) == 4 and (result.table.loc[result.table.body_threshold == 0.5, "pq"] == 0).all()
    assert isinstance(result.best, PostprocessParams)


def test_class_metric_and_base_parameters():
    preds, truths = dataset(2)
    base = PostprocessParams(contour_threshold=0.6)
    result = tune_params(preds, truths, {"body_threshold": [0.4]}, metric="mpq_plus", base=base)
    assert result.best.contour_threshold == 0.6 and result.score > 0.99


def test_default_grid_runs():
    preds, truths = dataset(1, body_prob=0.9)
    result = tune_params(preds, truths)
    assert len(result.table) == 81 and result.score > 0.99


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"grid": {"body_treshold": [0.4]}}, "unknown parameter 'body_treshold'"),
        ({"grid": {"body_threshold": []}}, "non-empty list"),
        ({"grid": {"body_threshold": [1.4]}}, "invalid setting"),
        ({"grid": {"body_threshold": [0.4]}, "metric": "nope"}, "not a scalar summary metric"),
        ({"grid": {"body_threshold": [0.4]}, "metric": "pq_per_class"}, "not a scalar summary metric"),
    ],
)
def test_bad_requests(kwargs, problem):
    preds, truths = dataset(1)
    with pytest.raises(InputError, match=problem):
        tune_params(preds, truths, **kwargs)


def test_mismatched_or_missing_inputs():
    preds, truths = dataset(2)
    with pytest.raises(InputError, match="2 predictions but 1 truths"):
        tune_params(preds, truths[:1])
    with pytest.raises(InputError, match="at least one"):
        tune_params([], [])
    untyped = [MapPrediction(p.semantic, p.distance) for p in preds]
    with pytest.raises(InputError, match="needs the predicted types"):
        tune_params(untyped, truths, {"min_size": [3]}, metric="mpq_plus")
    assert tune_params(untyped, truths, {"body_threshold": [0.4]}).score > 0.99
