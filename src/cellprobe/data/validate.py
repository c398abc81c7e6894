"""Validation of raw samples: what a reader read, before it becomes a :class:`Sample`.

One set of rules for every format, used two ways: loaders raise the first fatal problem as an
:class:`InputError` naming the file and sample (nothing is silently cast or skipped), and ``cellprobe data
check`` collects every problem of every sample into a report. The only conversions are lossless ones that are
checked first: integer labels of any width to int32/uint8 within range, and (for releases that store them so,
like PanNuke) float arrays whose values are all whole numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellprobe.data.sample import INT32_MAX, Sample, SampleMeta, int32_ids
from cellprobe.errors import InputError


class DataWarning(UserWarning):
    """Something in the data was skipped or changed; always said, never silent."""


@dataclass
class RawSample:
    """Arrays as read from disk (any dtype), with ``where``: the file and sample, e.g. ``labels.npy[17]``."""

    image: np.ndarray
    inst: np.ndarray
    cls: np.ndarray | None  # None: a single-class dataset, class 1 wherever inst > 0
    meta: SampleMeta
    where: str
    image_where: str | None = None  # when the image lives in another file than the labels


@dataclass(frozen=True)
class Anomaly:
    """One problem of one sample. ``fatal`` problems make the loader refuse the sample."""

    where: str
    kind: str
    message: str
    fatal: bool = True


def _whole(arr: np.ndarray, where: str, what: str, allow_float: bool) -> tuple[np.ndarray | None, Anomaly | None]:
    """Integer view of a label array; floats only when allowed and all whole numbers; never a silent cast."""
    kind = arr.dtype.kind
    if kind in "iu":
        return arr, None
    if kind == "f":
        if not allow_float:
            return None, Anomaly(where, "label_dtype", f"{what} are float ({arr.dtype}); ids must be integers")
        finite = np.isfinite(arr)
        if not finite.all() or np.any(arr != np.floor(arr)):
            return None, Anomaly(where, "label_dtype", f"{what} hold non-integer or non-finite values ({arr.dtype})")
        return arr.astype(np.int64), None
    return None, Anomaly(where, "label_dtype", f"{what} have dtype {arr.dtype}; ids must be integers")


def whole_labels(arr: np.ndarray, where: str, what: str, allow_float: bool = False) -> np.ndarray:
    """:func:`_whole` that raises: for readers that must combine label arrays before validation (PanNuke)."""
    out, problem = _whole(np.asarray(arr), where, what, allow_float)
    if problem is not None:
        raise InputError(problem.where, problem.message)
    assert out is not None
    return out


def image_problems(image: np.ndarray, where: str, allow_float: bool = False) -> list[Anomaly]:
    if image.ndim != 3 or image.shape[2] != 3:
        return [Anomaly(where, "image_shape", f"image must be (H, W, 3) RGB, got shape {image.shape}")]
    if image.dtype == np.uint8:
        return []
    if allow_float and image.dtype.kind == "f":
        if np.all(np.isfinite(image)) and image.min() >= 0 and image.max() <= 255 and np.all(image == np.floor(image)):
            return []
        return [Anomaly(where, "image_dtype", f"float image ({image.dtype}) is not whole values in 0..255")]
    return [Anomaly(where, "image_dtype", f"image is {image.dtype}, expected uint8 RGB")]


def label_problems(raw: RawSample, num_classes: int, allow_float: bool = False) -> list[Anomaly]:
    """Every problem of the label maps of ``raw`` (dtype, range, shape, instance/class agreement)."""
    where = raw.where
    out: list[Anomaly] = []
    h, w = raw.image.shape[:2]
    inst, problem = _whole(np.asarray(raw.inst), where, "instance ids", allow_float)
    if problem:
        out.append(problem)
    cls = None
    if raw.cls is not None:
        cls, problem = _whole(np.asarray(raw.cls), where, "class ids", allow_float)
        if problem:
            out.append(problem)
    if raw.inst.shape != (h, w) or (raw.cls is not None and raw.cls.shape != (h, w)):
        shapes = f"{raw.inst.shape}" + ("" if raw.cls is None else f"/{raw.cls.shape}")
        if raw.image_where and raw.image_where != where:  # name the image's own file, and where its labels are
            out.append(Anomaly(raw.image_where, "shape_mismatch",
                               f"image {(h, w)} does not match its label maps {shapes} in {where}"))
        else:
            out.append(Anomaly(where, "shape_mismatch", f"label maps {shapes} do not match image {(h, w)}"))
        return out
    if inst is None or (raw.cls is not None and cls is None):
        return out
    if inst.size and inst.min() < 0:
        out.append(Anomaly(where, "negative_id", f"negative instance id {int(inst.min())}"))
    if cls is not None and cls.size:
        lo, hi = int(cls.min()), int(cls.max())
        if lo < 0 or hi > num_classes:
            bad = lo if lo < 0 else hi
            out.append(Anomaly(where, "class_range", f"class id {bad} outside 0..{num_classes}"))
    if out or cls is None:
        return out
    mismatch = class_mismatch(inst, cls)
    if mismatch:
        out.append(Anomaly(where, "class_mismatch", f"instance ids do not match the class map: {mismatch}"))
    return out


def class_mismatch(inst: np.ndarray, cls: np.ndarray) -> str | None:
    """Why ``inst`` and ``cls`` disagree (an instance with several classes or with background class, class
    pixels outside every instance), or None. Vectorised over foreground pixels only."""
    fg = (inst > 0) | (cls > 0)
    if not fg.any():
        return None
    ids = inst[fg]
    names = None  # ids beyond int32 are numbered 0..n-1 in order for the pair keys, and named as given
    if int(ids.max()) > INT32_MAX:
        names, ids = np.unique(ids, return_inverse=True)
    ids = ids.astype(np.int64)
    classes = cls[fg].astype(np.int64)
    pairs = np.unique(ids * 65536 + classes)
    pid, pcls = pairs // 65536, pairs % 65536
    if names is not None:
        pid = names[pid]
    stray = pcls[pid == 0]
    if stray.size:
        return f"class {int(stray[0])} pixels outside every instance"
    unclassed = pid[pcls == 0]
    if unclassed.size:
        return f"instance {int(unclassed[0])} has background (0) class pixels"
    uniq, counts = np.unique(pid, return_counts=True)
    multi = uniq[counts > 1]
    if multi.size:
        found = sorted(int(c) for c in pcls[pid == multi[0]])
        return f"instance {int(multi[0])} has several classes {found}"
    return None


def disjoint_instances(inst: np.ndarray) -> list[tuple[int, list[int]]]:
    """(instance id, pixel count of each part) of every instance whose pixels form several separate parts
    (8-connected), largest part first. One nucleus is one blob; the real CoNSeP patches hold a few such
    instances (32 of 28,546: an outline pinched in two, a nucleus cut twice by the patch border), so
    ``cellprobe data check`` warns about them rather than refusing them."""
    from scipy import ndimage

    out: list[tuple[int, list[int]]] = []
    inst = np.asarray(inst)
    if not inst.size or inst.max() <= 0:
        return out
    for index, box in enumerate(ndimage.find_objects(inst.astype(np.int64, copy=False)), start=1):
        if box is None:
            continue
        parts, n = ndimage.label(inst[box] == index, structure=np.ones((3, 3), dtype=bool))
        if n > 1:
            out.append((index, sorted(np.bincount(parts.ravel())[1:].tolist(), reverse=True)))
    return out


def sample_problems(raw: RawSample, num_classes: int, allow_float_image: bool = False,
                    allow_float_labels: bool = False) -> list[Anomaly]:
    """All problems of ``raw``: image first, then labels (fatal ones) and an empty patch (not fatal)."""
    out = image_problems(np.asarray(raw.image), raw.image_where or raw.where, allow_float_image)
    if out:
        return out
    out = label_problems(raw, num_classes, allow_float_labels)
    if not out and not np.any(np.asarray(raw.inst)):
        out.append(Anomaly(raw.where, "empty", "no nucleus in this patch", fatal=False))
    return out


def to_sample(raw: RawSample, num_classes: int, allow_float_image: bool = False,
              allow_float_labels: bool = False) -> Sample:
    """The validated :class:`Sample` of ``raw``; the first fatal problem is raised as an InputError."""
    for problem in sample_problems(raw, num_classes, allow_float_image, allow_float_labels):
        if problem.fatal:
            raise InputError(problem.where, problem.message)
    image = np.asarray(raw.image)
    if image.dtype != np.uint8:  # whole values in 0..255, checked above
        image = image.astype(np.uint8)
    inst = np.asarray(raw.inst)
    inst = int32_ids(inst) if inst.dtype != np.int32 else np.array(inst)  # non-negative: checked above
    if raw.cls is None:
        cls = (inst > 0).astype(np.uint8)
    else:
        cls_in = np.asarray(raw.cls)
        cls = cls_in.astype(np.uint8) if cls_in.dtype != np.uint8 else np.array(cls_in)
    return Sample(np.ascontiguousarray(image), np.ascontiguousarray(inst), np.ascontiguousarray(cls), raw.meta)
