"""Fit the post-processing thresholds on a validation set: exhaustive search over a small grid.

``cellprobe tune`` (training) predicts the maps of the validation patches once and calls :func:`tune_params`;
every grid point re-runs only the post-processing and the metrics engine (:func:`cellprobe.metrics.score_maps`),
so a 81-point grid on ~100 patches takes about a minute on one core. Grid points are visited in a fixed order
and ties keep the first, so the result is deterministic.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


def _grid_points(grid: Mapping[str, Sequence], base: PostprocessParams) -> list[PostprocessParams]:
    fields = PostprocessParams.model_fields
    for name, values in grid.items():
        if name not in fields:
            raise InputError(None, f"tune grid: unknown parameter '{name}' (known: {', '.join(fields)})")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise InputError(None, f"tune grid: '{name}' needs a non-empty list of values")
    names = list(grid)
    points = []
    for combo in itertools.product(*(grid[n] for n in names)):
        update = dict(zip(names, combo, strict=True))
        try:
            points.append(PostprocessParams.model_validate({**base.model_dump(), **update}))
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise InputError(None, f"tune grid: invalid setting {update}: "
                                   f"{'.'.join(map(str, problem['loc']))} {problem['msg']}") from None
    return points


def tune_params(
    predictions: Sequence[MapPrediction],
    truths: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: Mapping[str, Sequence] | None = None,
    metric: str = "pq",
    *,
    base: PostprocessParams | None = None,
    num_classes: int | None = None,
    mpp: float | None = None,
) -> TuneResult:
    """Search ``grid`` (parameter name → values; default :data:`DEFAULT_GRID`) around ``base`` and return the
    point with the highest summary ``metric`` of :func:`cellprobe.metrics.score_maps` against ``truths``
    (one (instance map, class map) pair per prediction). Class metrics need ``types`` in every prediction;
    ``num_classes`` defaults to the type channels (else the largest true class id)."""
    from cellprobe.metrics import score_maps

    if len(predictions) != len(truths):
        raise InputError(None, f"{len(predictions)} predictions but {len(truths)} truths")
    if not predictions:
        raise InputError(None, "tuning needs at least one validation patch")
    base = base or PostprocessParams()
    points = _grid_points(DEFAULT_GRID if grid is None else grid, base)
    with_types = all(p.types is not None for p in predictions)
    if metric in CLASS_METRICS and not with_types:
        raise InputError(None, f"metric '{metric}' needs the predicted types of every patch")
    if num_classes is None:
        num_classes = (predictions[0].types.shape[0] - 1 if with_types
                       else max(int(np.max(c)) if np.size(c) else 0 for _, c in truths))
    true_inst = [np.asarray(t[0]) for t in truths]
    true_cls = [np.asarray(t[1]) for t in truths]

    rows, best, best_score = [], None, -np.inf
    varied = list((DEFAULT_GRID if grid is None else grid).keys())
    for params in points:
        pred_inst = [instances_from_maps(p.semantic, p.distance, params) for p in predictions]
        if with_types:
            pred_cls = [assign_types(inst, p.types)[0] for inst, p in zip(pred_inst, predictions, strict=True)]
        else:  # binary metrics only: any class inside instances
            pred_cls = [(inst > 0).astype(np.uint8) for inst in pred_inst]
        summary = score_maps(true_inst, true_cls, pred_inst, pred_cls, num_classes=max(num_classes, 1),
                             mpp=mpp).summary
        value = summary.get(metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            known = ", ".join(k for k, v in summary.items() if isinstance(v, (int, float)) and k != "num_images")
            raise InputError(None, f"metric '{metric}' is not a scalar summary metric (known: {known})")
        value = float(value)
        rows.append({**{n: getattr(params, n) for n in varied}, metric: value})
        if value > best_score:
            best, best_score = params, value
    if best is None:  # every point scored NaN
        best, best_score = points[0], float("nan")
    return TuneResult(best, best_score, metric, pd.DataFrame(rows))
