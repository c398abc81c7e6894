"""Score predictions against truth: per-image statistics, then the summary recomputed from them.

Entry points:
- :func:`score_conic` for (N, H, W, 2) label stacks (instance id, class id): the CoNIC release layout;
- :func:`score_pannuke` for (N, H, W, C+1) PanNuke masks with tissue names;
- :func:`score_maps` and :class:`ConicAccumulator` for lists of (instance map, class map) pairs of any size
  (what training and inference produce).
In every case ``summary == aggregate_*(per_image)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from cellprobe import atomic
from cellprobe.errors import InputError
from cellprobe.metrics.aggregate import (
    aggregate_conic,
    aggregate_pannuke,
    conic_image_metrics,
    pannuke_image_metrics,
)
from cellprobe.metrics.image import (
    OVERLAP_COLUMNS,
    conic_columns,
    conic_segments_row,
    pannuke_columns,
    pannuke_image_row,
)
from cellprobe.metrics.inputs import (
    MAX_CLASSES,
    as_ids,
    check_class_names,
    check_conic_stack,
    check_num_classes,
    check_pannuke_stack,
    check_same_layout,
    explain_swap,
    instance_ids,
    pannuke_truth_problem,
    truth_problem,
)
from cellprobe.metrics.labels import segments
from cellprobe.metrics.metric_params import MetricsParams
from cellprobe.metrics.parallel import map_rows

PANNUKE_CLASSES = ("neoplastic", "inflammatory", "connective", "dead", "epithelial")


@dataclass
class ScoreResult:
    """``summary``: metric name → value (per-class lists in class-id order); ``per_image``: one row of
    sufficient statistics (and readable per-image metrics) per image; ``params``: the thresholds used."""

    summary: dict[str, Any]
    per_image: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary, "params": dict(self.params)}

    def write(self, json_path: str | Path | None = None, csv_path: str | Path | None = None) -> None:
        """Write the summary as JSON and the per-image table as CSV, each atomically."""
        if json_path is not None:
            atomic.write_json(json_path, self.to_dict())
        if csv_path is not None:
            atomic.write_text(csv_path, self.per_image.to_csv())


def _params(radius: float | None, mpp: float | None, match_iou: float, r2_crop: int | None) -> MetricsParams:
    """The validated thresholds; a bad value (NaN, infinity, out of range) is one InputError line."""
    try:
        return MetricsParams(radius=radius, mpp=mpp, match_iou=match_iou, r2_crop=r2_crop)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        given = f"{key}={first['input']!r}: " if key else ""
        raise InputError(None, f"metric parameter {given}{message}") from None


@dataclass(frozen=True)
class _Classes:
    """The number of classes and where it came from (for messages)."""

    n: int
    origin: str  # "declared" or "from the truth"

    def note(self) -> str:
        if self.origin == "declared":
            return f"the declared classes are 1..{self.n}" if self.n else "no classes are declared"
        held = f"classes 1..{self.n}" if self.n else "no class"
        return f"the truth holds {held}; declare the class list (class_names, --classes) if there are more"


def _conic_row(
    get: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    sources: tuple[str, str],
    names: Sequence[str] | Mapping[int, str] | None,
    classes: _Classes,
    params: MetricsParams,
    i: int,
) -> np.ndarray:
    # one contiguous copy of each map (stack channels are strided views): every pass below reads it
    true_inst, true_cls, pred_inst, pred_cls = (np.ascontiguousarray(a) for a in get(i))
    row = names[i] if names is not None else i  # errors name the image when its name is known
    where_true, where_pred = f"{sources[0]}[{row}]", f"{sources[1]}[{row}]"
    if true_inst.ndim != 2:
        raise InputError(where_true, f"expected an (H, W) instance map, got shape {true_inst.shape}")
    if true_inst.shape != pred_inst.shape or true_cls.shape != true_inst.shape or pred_cls.shape != pred_inst.shape:
        raise InputError(where_pred, f"map shapes differ: truth {true_inst.shape}/{true_cls.shape}, "
                                     f"prediction {pred_inst.shape}/{pred_cls.shape}")
    if true_inst.size == 0:
        raise InputError(where_true, f"image of size {true_inst.shape[0]}×{true_inst.shape[1]}: nothing to score")
    crop = params.r2_crop
    if crop is not None and (crop > true_inst.shape[0] or crop > true_inst.shape[1]):
        raise InputError(where_true, f"the R² crop {crop} is larger than the image {true_inst.shape}")
    n = classes.n
    ti, tc = _checked_maps(true_inst, true_cls, where_true, classes)
    pi, pc = _checked_maps(pred_inst, pred_cls, where_pred, classes)
    ts = segments(ti, tc, n)
    problem = truth_problem(true_inst, true_cls, ts)
    if problem is not None:
        raise InputError(where_true, f"invalid truth: {explain_swap(problem, true_inst, true_cls, n)}")
    return conic_segments_row(ts, segments(pi, pc, n), num_classes=n, radius=params.detection_radius,
                              match_iou=params.match_iou, r2_crop=params.r2_crop)


def _checked_maps(inst: np.ndarray, cls: np.ndarray, where: str, classes: _Classes) -> tuple[np.ndarray, np.ndarray]:
    """Instance ids (relabelled when huge) and class ids within the classes; an out-of-range class id says
    whether the channels look swapped."""
    ids = instance_ids(inst, where)
    try:
        return ids, as_ids(cls, where, "class ids", classes.n, classes.note())
    except InputError as err:
        if "exceeds" not in err.problem:
            raise
        raise InputError(err.path, explain_swap(err.problem, inst, cls, classes.n)) from None


@dataclass(frozen=True)
class _StackPair:
    """Image i of two (N, H, W, 2) stacks as (true inst, true cls, pred inst, pred cls); picklable."""

    true: np.ndarray
    pred: np.ndarray

    def __call__(self, i: int):
        return self.true[i, ..., 0], self.true[i, ..., 1], self.pred[i, ..., 0], self.pred[i, ..., 1]


@dataclass(frozen=True)
class _ListPair:
    """Image i of four map lists; picklable."""

    true_inst: Sequence[np.ndarray]
    true_cls: Sequence[np.ndarray]
    pred_inst: Sequence[np.ndarray]
    pred_cls: Sequence[np.ndarray]

    def __call__(self, i: int):
        return self.true_inst[i], self.true_cls[i], self.pred_inst[i], self.pred_cls[i]


def _conic_result(rows: np.ndarray, num_classes: int, params: MetricsParams, class_names, index) -> ScoreResult:
    columns = conic_columns(num_classes, params.r2_crop is not None)
    stats = pd.DataFrame(rows, columns=list(columns), index=index)
    stats = stats.astype({c: np.int64 for c in columns if "iou_sum" not in c and c not in OVERLAP_COLUMNS})
    summary = aggregate_conic(stats, class_names=class_names)
    per_image = pd.concat([stats, conic_image_metrics(stats)], axis=1)
    used = params.model_dump()
    used["radius"] = params.detection_radius
    return ScoreResult(summary, per_image, used)


def say_empty_classes(result: ScoreResult) -> None:
    """For the scores a user reads (score, evaluate; not tuning's or training's many): a class with no nucleus in
    the truth nor the predictions of a CoNIC-format result scores PQ 0 and lowers mPQ+, as in the official CoNIC
    code (its F1 is undefined). Said, as a class list naming one the data never holds would do it silently."""
    from cellprobe.data.validate import DataWarning

    if result.summary.get("format") != "conic":
        return
    stats = result.per_image
    for c, name in enumerate(result.summary["class_names"], start=1):
        if not (stats[f"true_count_c{c}"].sum() or stats[f"pred_count_c{c}"].sum()):
            warnings.warn(f"class '{name}' (id {c}) has no nucleus in the truth nor the predictions: its PQ counts as "
                          "0 in mpq_plus, as in the official CoNIC code, and its F1 is undefined", DataWarning,
                          stacklevel=2)


def _index(n: int, names: Sequence[str] | None) -> pd.Index:
    if names is None:
        return pd.RangeIndex(n, name="image")
    if len(names) != n:
        raise ValueError(f"{len(names)} image names for {n} images")
    return pd.Index(list(names), name="image")


def _declared_classes(class_names: Sequence[str] | None, num_classes: int | None) -> int | None:
    """The declared number of classes (class names, else ``num_classes``), checked; None when undeclared."""
    if class_names is not None:
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(f"num_classes={num_classes} but {len(class_names)} class names")
        return len(class_names)
    return None if num_classes is None else check_num_classes(num_classes)


_CHUNK_PIXELS = 1 << 22  # images read at a time when scanning a memory-mapped stack


def _truth_classes(true: np.ndarray, source: str) -> int:
    """Largest class id in the truth's class channel (never the predictions'), read a few images at a time;
    beyond :data:`MAX_CLASSES` it is refused naming the image, before anything is sized by it."""
    n, h, w = true.shape[:3]
    step = max(1, _CHUNK_PIXELS // max(h * w, 1))
    top = 0
    for start in range(0, n, step):
        block = np.asarray(true[start : start + step, ..., 1]).reshape(min(step, n - start), -1)
        highest = block.max(axis=1)
        over = np.flatnonzero(highest > MAX_CLASSES)
        if over.size:
            k = start + int(over[0])
            problem = f"class id {int(highest[over[0]])}: more than {MAX_CLASSES} classes are not supported"
            raise InputError(f"{source}[{k}]", explain_swap(problem, np.asarray(true[k, ..., 0]),
                                                            np.asarray(true[k, ..., 1])))
        top = max(top, int(highest.max()))
    return top


def score_conic(
    true: np.ndarray,
    pred: np.ndarray,
    *,
    radius: float | None = None,
    mpp: float | None = None,
    r2_crop: int | None = None,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    match_iou: float = 0.5,
    workers: int = 1,
    image_names: Sequence[str] | None = None,
    sources: tuple[str, str] = ("true", "pred"),
) -> ScoreResult:
    """Score (N, H, W, 2) label stacks (instance id, class id), CoNIC layout.

    ``radius``: detection radius in px (default: 12 px at 40×, i.e. ``3 µm / mpp``; give ``mpp=0.5`` for 20×
    data such as CoNIC). ``r2_crop``: count nuclei for R² in the central crop (CoNIC challenge: 224).
    ``num_classes``: from ``class_names``, else given, else the largest class id of the truth (never of the
    predictions: a predicted class id beyond the classes is an error). ``workers``: processes (<= 0: all
    cores). ``sources`` name the inputs in error messages (file paths in the CLI).
    """
    class_names = check_class_names(class_names)
    check_conic_stack(true, sources[0])
    check_conic_stack(pred, sources[1])
    check_same_layout(true, pred, *sources)
    params = _params(radius, mpp, match_iou, r2_crop)
    declared = _declared_classes(class_names, num_classes)
    if declared is None:
        classes = _Classes(_truth_classes(true, sources[0]), "from the truth")
    else:
        classes = _Classes(declared, "declared")

    get = _StackPair(true, pred)
    width = len(conic_columns(classes.n, r2_crop is not None))
    rows = map_rows(partial(_conic_row, get, sources, None, classes, params), true.shape[0], width, workers)
    return _conic_result(rows, classes.n, params, class_names, _index(true.shape[0], image_names))


def score_maps(
    true_inst: Sequence[np.ndarray],
    true_cls: Sequence[np.ndarray],
    pred_inst: Sequence[np.ndarray],
    pred_cls: Sequence[np.ndarray],
    *,
    num_classes: int,
    radius: float | None = None,
    mpp: float | None = None,
    r2_crop: int | None = None,
    class_names: Sequence[str] | None = None,
    match_iou: float = 0.5,
    workers: int = 1,
    image_names: Sequence[str] | None = None,
    sources: tuple[str, str] = ("true", "pred"),
) -> ScoreResult:
    """Score lists of (H, W) instance and class maps (sizes may differ between images), CoNIC semantics.
    ``sources`` and ``image_names`` name the inputs in error messages (``truth[<image name>]``)."""
    n = len(true_inst)
    if not (len(true_cls) == len(pred_inst) == len(pred_cls) == n):
        raise ValueError("true_inst, true_cls, pred_inst and pred_cls must have the same length")
    if n == 0:
        raise InputError(sources[0], "no images: nothing to score")
    class_names = check_class_names(class_names)
    num_classes = _declared_classes(class_names, num_classes)
    params = _params(radius, mpp, match_iou, r2_crop)

    get = _ListPair(true_inst, true_cls, pred_inst, pred_cls)
    width = len(conic_columns(num_classes, r2_crop is not None))
    classes = _Classes(num_classes, "declared")
    rows = map_rows(partial(_conic_row, get, sources, image_names, classes, params), n, width, workers)
    return _conic_result(rows, num_classes, params, class_names, _index(n, image_names))


class ConicAccumulator:
    """Add (truth, prediction) map pairs one at a time (e.g. during validation), then get the ScoreResult."""

    def __init__(
        self,
        num_classes: int,
        *,
        radius: float | None = None,
        mpp: float | None = None,
        r2_crop: int | None = None,
        class_names: Sequence[str] | None = None,
        match_iou: float = 0.5,
    ) -> None:
        self.class_names = check_class_names(class_names)
        self.num_classes = _declared_classes(self.class_names, num_classes)
        self.params = _params(radius, mpp, match_iou, r2_crop)
        self._rows: list[np.ndarray] = []
        self._names: list[str] = []

    def add(self, true_inst, true_cls, pred_inst, pred_cls, name: str | None = None) -> None:
        i = len(self._rows)
        row = _conic_row(lambda _: (true_inst, true_cls, pred_inst, pred_cls), ("truth", "prediction"),
                         None if name is None else {i: name}, _Classes(self.num_classes, "declared"), self.params, i)
        self._rows.append(row)
        self._names.append(str(i) if name is None else name)

    def __len__(self) -> int:
        return len(self._rows)

    def result(self) -> ScoreResult:
        """The result of the images added so far; with none added, an InputError (nothing to score)."""
        if not self._rows:
            raise InputError(None, "no images were added: nothing to score")
        rows = np.stack(self._rows)
        return _conic_result(rows, self.num_classes, self.params, self.class_names, _index(len(rows), self._names))


def _pannuke_row(true: np.ndarray, pred: np.ndarray, sources: tuple[str, str], num_classes: int,
                 match_iou: float, i: int) -> np.ndarray:
    # Only the class channels: the last (background) channel plays no part in the official metric.
    where_true = f"{sources[0]}[{i}]"
    true_ids = instance_ids(np.asarray(true[i, ..., :num_classes]), where_true)
    problem = pannuke_truth_problem(true_ids)
    if problem is not None:
        raise InputError(where_true, f"invalid truth: {problem}")
    return pannuke_image_row(
        true_ids,
        instance_ids(np.asarray(pred[i, ..., :num_classes]), f"{sources[1]}[{i}]"),
        num_classes=num_classes,
        match_iou=match_iou,
    )


def score_pannuke(
    true_masks: np.ndarray,
    pred_masks: np.ndarray,
    types: Sequence[str],
    *,
    class_names: Sequence[str] | None = None,
    match_iou: float = 0.5,
    workers: int = 1,
    sources: tuple[str, str] = ("true", "pred"),
) -> ScoreResult:
    """Score PanNuke masks (N, H, W, C+1): C class channels of instance ids, then background (ignored).

    ``types``: tissue name of each image. Class names default to PanNuke's five when C = 5.
    """
    class_names = check_class_names(class_names)
    num_classes = true_masks.shape[-1] - 1 if true_masks.ndim == 4 else 5
    if class_names is not None:
        num_classes = len(class_names)
    elif num_classes == len(PANNUKE_CLASSES):
        class_names = PANNUKE_CLASSES
    check_pannuke_stack(true_masks, sources[0], num_classes)
    check_pannuke_stack(pred_masks, sources[1], num_classes)
    check_same_layout(true_masks, pred_masks, *sources)
    n = true_masks.shape[0]
    if len(types) != n:
        raise InputError(sources[0], f"{len(types)} tissue types for {n} images")
    _params(None, None, match_iou, None)  # validates the threshold
    fn = partial(_pannuke_row, true_masks, pred_masks, sources, num_classes, match_iou)
    columns = pannuke_columns(num_classes)
    rows = map_rows(fn, n, len(columns), workers)
    stats = pd.DataFrame(rows, columns=list(columns), index=pd.RangeIndex(n, name="image"))
    stats = stats.astype({c: np.int64 for c in columns if "iou_sum" not in c})
    stats.insert(0, "tissue", [str(t) for t in types])
    summary = aggregate_pannuke(stats, class_names=class_names)
    per_image = pd.concat([stats, pannuke_image_metrics(stats)], axis=1)
    return ScoreResult(summary, per_image, {"match_iou": match_iou})
