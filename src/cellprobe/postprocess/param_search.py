"""Fit the post-processing thresholds on a validation set.

``cellprobe tune`` (training) predicts the maps of the validation patches once and calls :func:`tune_params`;
every setting tried re-runs only the post-processing and the metrics engine
(:func:`cellprobe.metrics.score_maps`). Two searches over a grid of values per parameter:

- ``coordinate`` (default): from the base setting, each parameter in turn takes the value of its list that
  scores best with the others held (it keeps the base value, which need not be in its list, unless a value
  of the list scores higher), until a whole round changes nothing (at most ``rounds``). The default
  grid (5 parameters, 5-6 values each: 15,000 combinations) costs about 25 settings a round.
- ``grid``: every combination (for small grids).

Settings are visited in a fixed order and ties keep the earlier one, so the result is deterministic.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError

from cellprobe.errors import InputError
from cellprobe.postprocess.maps import instances_from_maps
from cellprobe.postprocess.params import DEFAULT_GRID, PostprocessParams
from cellprobe.postprocess.types import assign_types

#: summary metrics that need the predicted cell types
CLASS_METRICS = ("mpq_plus", "r2", "r2_region", "accuracy_type")


@dataclass(frozen=True)
class MapPrediction:
    """Decoder output of one patch, as probabilities / maps: semantic (3, H, W), distance (4, H, W) and,
    when class metrics are tuned, types (C+1, H, W)."""

    semantic: np.ndarray
    distance: np.ndarray
    types: np.ndarray | None = None


@dataclass
class TuneResult:
    """``best``: the winning parameters; ``score``: its metric value; ``table``: one row per grid point
    (the varied parameters and the metric), in search order."""

    best: PostprocessParams
    score: float
    metric: str
    table: pd.DataFrame


#: the most settings a grid search scores (each one post-processes and scores every validation patch)
MAX_GRID_POINTS = 20_000


def _grid_points(grid: Mapping[str, Sequence], base: PostprocessParams) -> list[PostprocessParams]:
    fields = PostprocessParams.model_fields
    for name, values in grid.items():
        if name not in fields:
            raise InputError(None, f"tune grid: unknown parameter '{name}' (known: {', '.join(fields)})")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise InputError(None, f"tune grid: '{name}' needs a non-empty list of values")
        repeated = [repr(v) for i, v in enumerate(values) if v in list(values)[:i]]
        if repeated:  # each point is scored once: a repeat would only cost time, and hints at a typo
            raise InputError(None, f"tune grid: '{name}' lists {repeated[0]} twice")
    names = list(grid)
    count = math.prod(len(grid[n]) for n in names)
    if count > MAX_GRID_POINTS:
        raise InputError(None, f"tune grid: {count:,} combinations to search, more than {MAX_GRID_POINTS:,}; "
                               "use fewer values or the coordinate search")
    points = []
    for combo in itertools.product(*(grid[n] for n in names)):
        update = dict(zip(names, combo, strict=True))
        try:  # strictly typed, as every user setting: '0.5' is not a number, true not a size
            points.append(PostprocessParams.model_validate_json(
                json.dumps({**base.model_dump(mode="json"), **update}), strict=True))
        except (TypeError, ValueError) as exc:
            if not isinstance(exc, ValidationError):
                raise InputError(None, f"tune grid: invalid setting {update}: not plain data") from None
            problem = exc.errors()[0]
            raise InputError(None, f"tune grid: invalid setting {update}: "
                                   f"{'.'.join(map(str, problem['loc']))} {problem['msg']}") from None
    return points


def check_grid(grid: Mapping[str, Sequence], base: PostprocessParams) -> None:
    """Every value of every parameter checked (each against ``base``), before any work; InputError otherwise."""
    if not isinstance(grid, Mapping) or not grid:
        raise InputError(None, "tune grid: needs a mapping of parameter names to lists of values")
    for name, values in grid.items():
        _grid_points({name: values}, base)


@functools.cache
def tunable_metrics() -> tuple[str, ...]:
    """The metrics tuning can maximise: the scalar metrics of :func:`cellprobe.metrics.score_maps`'s summary
    (which :func:`tune_params` reads its metric from), found from a one-patch summary."""
    from cellprobe.metrics import score_maps

    inst = np.zeros((8, 8), np.int32)
    inst[2:5, 2:5] = 1
    cls = (inst > 0).astype(np.uint8)
    summary = score_maps([inst], [cls], [inst], [cls], num_classes=1, image_names=["probe"],
                         sources=("truth", "prediction")).summary
    return tuple(k for k, v in summary.items()
                 if isinstance(v, int | float) and not isinstance(v, bool) and k != "num_images")


def check_search(grid: Mapping[str, Sequence] | None, metric: str, search: str, base: PostprocessParams,
                 where: Mapping[str, Any] | None = None) -> None:
    """The whole search (grid, metric, search kind, and for a grid search its number of combinations) checked
    before any network runs; InputError otherwise. ``where``: how the user gave ``metric``, ``search`` and
    ``grid`` (an option, a config key or a file), named in the error."""
    where = where or {}
    if search not in ("coordinate", "grid"):
        raise InputError(where.get("search"), f"unknown search '{search}' (coordinate or grid)")
    if metric not in tunable_metrics():
        raise InputError(where.get("metric"), f"unknown metric '{metric}' (known: {', '.join(tunable_metrics())})")
    grid = DEFAULT_GRID if grid is None else grid
    try:
        check_grid(grid, base)
    except InputError as exc:
        raise InputError(where.get("grid"), exc.problem) from None
    count = math.prod(len(values) for values in grid.values())
    if search == "grid" and count > MAX_GRID_POINTS:
        raise InputError(where.get("grid", where.get("search")), f"tune grid: {count:,} combinations to search, "
                         f"more than {MAX_GRID_POINTS:,}; use fewer values or the coordinate search")


def _coordinate_points(grid: Mapping[str, Sequence], base: PostprocessParams, score: Callable[[PostprocessParams], float],
                       rounds: int) -> None:
    """Coordinate ascent over ``grid`` from ``base``; ``score`` records every setting it is given."""
    current, best = base, score(base)
    for _ in range(rounds):
        changed = False
        for name, values in grid.items():
            for point in _grid_points({name: values}, current):
                value = score(point)
                if value > best:
                    current, best, changed = point, value, True
        if not changed:
            return


def tune_params(
    predictions: Sequence[MapPrediction],
    truths: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: Mapping[str, Sequence] | None = None,
    metric: str = "pq",
    *,
    search: Literal["coordinate", "grid"] = "coordinate",
    rounds: int = 4,
    base: PostprocessParams | None = None,
    num_classes: int | None = None,
    mpp: float | None = None,
    names: Sequence[str] | None = None,
) -> TuneResult:
    """Search ``grid`` (parameter name → values; default :data:`DEFAULT_GRID`) from ``base`` by ``search``
    and return the setting with the highest summary ``metric`` of :func:`cellprobe.metrics.score_maps`
    against ``truths`` (one (instance map, class map) pair per prediction). Class metrics need ``types`` in
    every prediction; ``num_classes`` defaults to the type channels (else the largest true class id).
    ``names``: the patches' names, for error messages."""
    from cellprobe.metrics import score_maps

    if len(predictions) != len(truths):
        raise InputError(None, f"{len(predictions)} predictions but {len(truths)} truths")
    if not predictions:
        raise InputError(None, "tuning needs at least one validation patch")
    base = base or PostprocessParams()
    check_search(grid, metric, search, base)
    grid = DEFAULT_GRID if grid is None else grid
    with_types = all(p.types is not None for p in predictions)
    if metric in CLASS_METRICS and not with_types:
        raise InputError(None, f"metric '{metric}' needs the predicted types of every patch")
    if num_classes is None:
        num_classes = (predictions[0].types.shape[0] - 1 if with_types
                       else max(int(np.max(c)) if np.size(c) else 0 for _, c in truths))
    true_inst = [np.asarray(t[0]) for t in truths]
    true_cls = [np.asarray(t[1]) for t in truths]

    varied = list(grid)
    seen: dict[str, float] = {}
    rows: list[dict] = []

    def score(params: PostprocessParams) -> float:
        key = params.model_dump_json()
        if key not in seen:
            value = _score(params)
            rows.append({**{n: getattr(params, n) for n in varied}, metric: value})
            seen[key] = -np.inf if np.isnan(value) else value
        return seen[key]

    def _score(params: PostprocessParams) -> float:
        pred_inst = [instances_from_maps(p.semantic, p.distance, params) for p in predictions]
        if with_types:
            pred_cls = [assign_types(inst, p.types)[0] for inst, p in zip(pred_inst, predictions, strict=True)]
        else:  # binary metrics only: any class inside instances
            pred_cls = [(inst > 0).astype(np.uint8) for inst in pred_inst]
        summary = score_maps(true_inst, true_cls, pred_inst, pred_cls, num_classes=max(num_classes, 1),
                             mpp=mpp, image_names=names, sources=("truth", "prediction")).summary
        value = summary.get(metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            known = ", ".join(k for k, v in summary.items() if isinstance(v, (int, float)) and k != "num_images")
            raise InputError(None, f"metric '{metric}' is not a scalar summary metric (known: {known})")
        return float(value)

    if search == "grid":
        for params in _grid_points(grid, base):
            score(params)
    else:
        _coordinate_points(grid, base, score, rounds)
    best_key = max(seen, key=lambda k: seen[k])  # the first of the tied best (dicts keep insertion order)
    best, best_score = PostprocessParams.model_validate_json(best_key), seen[best_key]
    if best_score == -np.inf:  # every setting scored NaN: keep the first
        best, best_score = PostprocessParams.model_validate_json(next(iter(seen))), float("nan")
    return TuneResult(best, best_score, metric, pd.DataFrame(rows))
