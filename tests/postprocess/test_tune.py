from __future__ import annotations

import numpy as np
import pytest

from cellprobe.errors import InputError
from cellprobe.postprocess import DEFAULT_GRID, MapPrediction, PostprocessParams, tune_params

from .oracle import discs, oracle_maps


def dataset(n: int = 3, body_prob: float | tuple[float, ...] = 0.45):
    """Predictions whose cell-body probability is only ``body_prob`` (one value, or one per image): the
    default body threshold (0.5) finds no marker below it, a lower one recovers every cell."""
    probs = body_prob if isinstance(body_prob, tuple) else (body_prob,) * n
    preds, truths = [], []
    for k, prob in enumerate(probs):
        inst = discs(centres=((20, 20 + k), (20, 33 + k), (45, 40 - k)))
        cls = np.where(inst == 3, 2, np.where(inst > 0, 1, 0)).astype(np.uint8)
        semantic, distance, _, types = oracle_maps(inst, cls)
        body = semantic[2] > 0
        semantic[2][body] = prob
        semantic[1][body] = 1 - prob
        preds.append(MapPrediction(semantic, distance, types[:3]))
        truths.append((inst, cls))
    return preds, truths


def test_finds_the_threshold_that_works():
    preds, truths = dataset()
    result = tune_params(preds, truths, {"body_threshold": [0.5, 0.4], "min_size": [3, 10]}, search="grid")
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


def test_default_search_is_coordinate_ascent_over_the_default_grid():
    preds, truths = dataset(1, body_prob=0.9)
    result = tune_params(preds, truths)
    assert result.score > 0.99 and list(result.table.columns) == [*DEFAULT_GRID, "pq"]
    per_round = sum(len(v) for v in DEFAULT_GRID.values())
    assert len(result.table) <= 1 + 4 * per_round  # not the 15,000-point product


def test_coordinate_search_walks_two_parameters_to_the_optimum():
    """From a base that drops every cell (min_size 200), with body probabilities 0.45 / 0.55 / 0.9 in the
    three images: the minimum size must move first, then the body threshold. The coordinate search gets to
    the grid's optimum visiting fewer settings."""
    preds, truths = dataset(body_prob=(0.45, 0.55, 0.9))
    base = PostprocessParams(min_size=200, body_threshold=0.6)
    grid = {"body_threshold": [0.6, 0.5, 0.4], "min_size": [200, 100, 10], "fg_threshold": [0.5, 0.6, 0.7]}
    full = tune_params(preds, truths, grid, search="grid", base=base)
    walk = tune_params(preds, truths, grid, base=base)
    assert walk.score == pytest.approx(full.score) and full.score > 0.99
    assert walk.best.body_threshold == 0.4 and walk.best.min_size == 100
    assert len(walk.table) < len(full.table) == 27
    again = tune_params(preds, truths, grid, base=base)  # deterministic
    assert again.table.equals(walk.table) and again.best == walk.best


def test_coordinate_search_stops_on_a_plateau():
    """Its known limit: where no single parameter improves the score, it stays at the base."""
    preds, truths = dataset(1)  # body 0.45 everywhere: needs body_threshold 0.4 *and* a smaller min_size
    base = PostprocessParams(min_size=200)
    result = tune_params(preds, truths, {"body_threshold": [0.5, 0.4], "min_size": [200, 10]}, base=base)
    assert result.score == 0.0 and result.best == base


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"grid": {"body_treshold": [0.4]}}, "unknown parameter 'body_treshold'"),
        ({"grid": {"body_threshold": []}}, "non-empty list"),
        ({"grid": {"body_threshold": [1.4]}}, "invalid setting"),
        ({"grid": {"body_threshold": [0.4, 0.5, 0.4]}}, "lists 0.4 twice"),
        ({"grid": {"body_threshold": [0.4]}, "metric": "nope"}, "unknown metric .nope."),
        ({"grid": {"body_threshold": [0.4]}, "metric": "pq_per_class"}, "unknown metric .pq_per_class."),
        ({"grid": {"body_threshold": [0.4]}, "search": "random"}, "unknown search 'random'"),
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


def test_grids_are_strictly_typed_and_bounded():
    from cellprobe.postprocess.param_search import MAX_GRID_POINTS, _grid_points, check_grid

    with pytest.raises(InputError, match="fg_threshold"):
        check_grid({"fg_threshold": ["0.5"]}, PostprocessParams())  # a string is not a number
    with pytest.raises(InputError, match="min_size"):
        check_grid({"min_size": [True]}, PostprocessParams())  # nor a boolean a size
    values = [round(0.01 * i, 2) for i in range(1, 100)]
    huge = {"fg_threshold": values, "body_threshold": values, "contour_threshold": values}
    with pytest.raises(InputError, match=f"more than {MAX_GRID_POINTS:,}"):
        _grid_points(huge, PostprocessParams())
