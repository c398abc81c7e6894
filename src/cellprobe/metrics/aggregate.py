"""Summaries recomputed from per-image rows: the only place where the official formulas are applied.

``score_conic`` / ``score_pannuke`` call these on their own per-image table, and the benchmark's bootstrap calls
them on resampled rows, so a summary always equals ``aggregate_*(per_image)``.

Formulas (per format, as in the official code):
- DQ = TP / (TP + FP/2 + FN/2 [+ 1e-6 CoNIC only]), SQ = ΣIoU / (TP + 1e-6), PQ = DQ · SQ.
- CoNIC ``pq``: mean over images of binary PQ (an image with nothing in either map scores 0);
  ``mpq_plus``: TP/FP/FN/ΣIoU summed per class over all images, PQ per class, mean over classes;
  ``r2``: sklearn's r2_score of per-image nucleus counts per class, mean over classes.
- PanNuke: PQ per image, NaN where the image's truth (of that class) is empty; ``mpq_i`` = nanmean over classes;
  official ``bpq``/``mpq`` = nanmean over tissues of the per-tissue nanmean over images; ``*_image`` = nanmean
  over images; ``pq_per_class`` = nanmean over images.
- Detection (HoVer-Net): pairs pooled over images; F1_d = 2TP / (2TP + FP + FN); type accuracy over pairs;
  per class F1 = 2TP / (2TP + 2FP + 2FN + FP_d + FN_d) on pairs where truth or prediction is the class.
- AJI, AJI+, DICE1, DICE2: per-image ratios averaged over images; images with neither truth nor prediction
  (0/0) are left out of these means.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cellprobe.metrics.inputs import check_class_names

CONIC_DQ_EPS = 1.0e-6  # CoNIC's get_pq adds it to DQ's denominator; the PanNuke code does not
SQ_EPS = 1.0e-6  # both add it to SQ's denominator


def pq_terms(tp, fp, fn, iou_sum, dq_eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(DQ, SQ, PQ), elementwise, in the official operation order."""
    tp, fp, fn, iou_sum = (np.asarray(v, np.float64) for v in (tp, fp, fn, iou_sum))
    with np.errstate(divide="ignore", invalid="ignore"):
        dq = tp / (tp + 0.5 * fp + 0.5 * fn + dq_eps)
        sq = iou_sum / (tp + SQ_EPS)
    return dq, sq, dq * sq


def _ratio(num: np.ndarray, den: np.ndarray, scale: float = 1.0) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, scale * num / np.where(den > 0, den, 1.0), np.nan)


def _nanmean(values, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an all-NaN slice is NaN, as intended
        return np.nanmean(np.asarray(values, np.float64), axis=axis)


def _mean(values) -> float:
    values = np.asarray(values, np.float64)
    return float(values.mean()) if values.size else float("nan")


def num_classes_of(per_image: pd.DataFrame) -> int:
    """Number of classes in a per-image table (from its ``tp_c{c}`` columns)."""
    return sum(1 for col in per_image.columns if re.fullmatch(r"tp_c\d+", str(col)))


class _Stats:
    """The numeric columns of a per-image table as one float64 array (a bootstrap aggregates thousands of
    resamples: one conversion instead of a pandas lookup per column)."""

    def __init__(self, per_image: pd.DataFrame) -> None:
        numeric = per_image.drop(columns="tissue") if "tissue" in per_image.columns else per_image
        self.values = numeric.to_numpy(np.float64)
        self.where = {str(c): i for i, c in enumerate(numeric.columns)}
        self.num_classes = num_classes_of(per_image)
        self.rows = self.values.shape[0]

    def col(self, name: str) -> np.ndarray:
        return self.values[:, self.where[name]]

    def cols(self, names: Sequence[str]) -> np.ndarray:
        return self.values[:, [self.where[n] for n in names]]

    def per_class(self, stat: str) -> np.ndarray:
        """(N, C) values of the ``{stat}_c{c}`` columns."""
        return self.cols([f"{stat}_c{c}" for c in range(1, self.num_classes + 1)])

    def has(self, name: str) -> bool:
        return name in self.where


def default_class_names(num_classes: int) -> list[str]:
    return [f"class{c}" for c in range(1, num_classes + 1)]


def _names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return default_class_names(num_classes)
    names = check_class_names(class_names)  # unique, non-empty names
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    return names


def _listed(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def _r2(true_counts: np.ndarray, pred_counts: np.ndarray) -> np.ndarray:
    """Per-class r2_score (sklearn, the challenge's implementation); NaN with fewer than two images."""
    from sklearn.metrics import r2_score

    if true_counts.shape[1] == 0:
        return np.zeros(0)
    if true_counts.shape[0] < 2:
        return np.full(true_counts.shape[1], np.nan)
    return np.asarray(r2_score(true_counts, pred_counts, multioutput="raw_values"), np.float64)


def _r2_region(st: _Stats, region: str) -> str:
    has_crop = st.num_classes > 0 and st.has("true_count_crop_c1")
    if region == "auto":
        return "crop" if has_crop else "patch"
    if region not in ("crop", "patch"):
        raise ValueError(f"r2_region must be 'auto', 'crop' or 'patch', got {region!r}")
    if region == "crop" and not has_crop:
        raise ValueError("per-image table has no central-crop counts (score with r2_crop)")
    return region


def _detection(st: _Stats) -> dict[str, Any]:
    types = range(st.num_classes + 1)
    width = st.num_classes + 1
    pairs = st.cols([f"det_pair_t{t}_p{p}" for t in types for p in types]).sum(axis=0).reshape(width, width)
    fn_by_type = st.cols([f"det_fn_t{t}" for t in types]).sum(axis=0)
    fp_by_type = st.cols([f"det_fp_p{p}" for p in types]).sum(axis=0)
    tp_d, fp_d, fn_d = pairs.sum(), fp_by_type.sum(), fn_by_type.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_d = 2 * tp_d / (2 * tp_d + fp_d + fn_d)
        accuracy = np.trace(pairs) / tp_d
        tp = np.diag(pairs)[1:]
        fp = pairs.sum(axis=0)[1:] - tp  # paired, predicted c, true another type
        fn = pairs.sum(axis=1)[1:] - tp  # paired, true c, predicted another type
        per_class = 2 * tp / (2 * tp + 2 * fp + 2 * fn + fp_by_type[1:] + fn_by_type[1:])
        precision = tp_d / (tp_d + fp_d)
        recall = tp_d / (tp_d + fn_d)
    return {
        "f1_detection": float(f1_d),
        "precision_detection": float(precision),
        "recall_detection": float(recall),
        "accuracy_type": float(accuracy),
        "f1_per_class": _listed(per_class),
    }


def _conic_image_values(st: _Stats) -> dict[str, np.ndarray]:
    dq, sq, pq = pq_terms(*(st.col(c) for c in ("tp", "fp", "fn", "iou_sum")), CONIC_DQ_EPS)
    dice2_total = st.col("dice2_total")
    dice2 = _ratio(st.col("dice2_inter"), dice2_total, 2.0)
    # DICE2: 0 when instances exist but none overlap, NaN when both maps are empty
    any_instance = (st.col("n_true") + st.col("n_pred")) > 0
    return {
        "pq": pq,
        "dq": dq,
        "sq": sq,
        "aji": _ratio(st.col("aji_inter"), st.col("aji_union")),
        "aji_plus": _ratio(st.col("ajip_inter"), st.col("ajip_union")),
        "dice": _ratio(st.col("dice_inter"), st.col("dice_total"), 2.0),
        "dice2": np.where(any_instance & ~(dice2_total > 0), 0.0, dice2),
    }


def conic_image_metrics(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per-image metric values (for people reading the per-image table), computed from its statistics."""
    return pd.DataFrame(_conic_image_values(_Stats(per_image)), index=per_image.index)


def aggregate_conic(
    per_image: pd.DataFrame, *, class_names: Sequence[str] | None = None, r2_region: str = "auto"
) -> dict[str, Any]:
    """Summary of a CoNIC-format evaluation from its per-image table (any subset or resample of rows).

    ``r2_region``: count nuclei for R² in the ``"patch"`` or the central ``"crop"``; ``"auto"`` uses the crop
    counts when the table has them.
    """
    st = _Stats(per_image)
    names = _names(class_names, st.num_classes)
    region = _r2_region(st, r2_region)
    image = _conic_image_values(st)

    dq_c, sq_c, pq_c = pq_terms(*(st.per_class(s).sum(axis=0) for s in ("tp", "fp", "fn", "iou_sum")), CONIC_DQ_EPS)
    infix = "_crop" if region == "crop" else ""
    r2_c = _r2(st.per_class(f"true_count{infix}"), st.per_class(f"pred_count{infix}"))

    summary: dict[str, Any] = {
        "format": "conic",
        "num_images": st.rows,
        "class_names": names,
        "pq": _mean(image["pq"]),
        "dq": _mean(image["dq"]),
        "sq": _mean(image["sq"]),
        "mpq_plus": _mean(pq_c),
        "pq_per_class": _listed(pq_c),
        "dq_per_class": _listed(dq_c),
        "sq_per_class": _listed(sq_c),
        "r2": _mean(r2_c),
        "r2_per_class": _listed(r2_c),
        "r2_region": region,
    }
    summary.update(_detection(st))
    for key in ("aji", "aji_plus", "dice", "dice2"):
        summary[key] = float(_nanmean(image[key]))
    return summary


def _pannuke_image_pq(st: _Stats) -> tuple[np.ndarray, np.ndarray]:
    """(bPQ per image, (N, C) PQ per image and class), NaN where that image's truth (of the class) is empty."""
    tp, fp, fn, iou = (st.col(s) for s in ("tp", "fp", "fn", "iou_sum"))
    bpq = np.where(tp + fn > 0, pq_terms(tp, fp, fn, iou, 0.0)[2], np.nan)
    tp, fp, fn, iou = (st.per_class(s) for s in ("tp", "fp", "fn", "iou_sum"))
    pq = np.where(tp + fn > 0, pq_terms(tp, fp, fn, iou, 0.0)[2], np.nan)
    return bpq, pq


def pannuke_image_metrics(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per-image ``bpq`` and ``mpq`` (nanmean over classes) and per-class ``pq_c{c}`` values."""
    bpq, pq = _pannuke_image_pq(_Stats(per_image))
    data = {"bpq": bpq, "mpq": _nanmean(pq, axis=1)}
    data.update({f"pq_c{c + 1}": pq[:, c] for c in range(pq.shape[1])})
    return pd.DataFrame(data, index=per_image.index)


def aggregate_pannuke(per_image: pd.DataFrame, *, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Summary of a PanNuke-format evaluation from its per-image table (needs a ``tissue`` column)."""
    st = _Stats(per_image)
    names = _names(class_names, st.num_classes)
    bpq_i, pq = _pannuke_image_pq(st)
    mpq_i = _nanmean(pq, axis=1)
    tissues = per_image["tissue"].astype(str).to_numpy()
    per_tissue: dict[str, dict[str, Any]] = {}
    for tissue in sorted(set(tissues)):
        sel = tissues == tissue
        per_tissue[tissue] = {
            "bpq": float(_nanmean(bpq_i[sel])),
            "mpq": float(_nanmean(mpq_i[sel])),
            "num_images": int(sel.sum()),
        }
    return {
        "format": "pannuke",
        "num_images": st.rows,
        "class_names": names,
        "bpq": float(_nanmean([v["bpq"] for v in per_tissue.values()])),
        "mpq": float(_nanmean([v["mpq"] for v in per_tissue.values()])),
        "bpq_image": float(_nanmean(bpq_i)),
        "mpq_image": float(_nanmean(mpq_i)),
        "pq_per_class": _listed(_nanmean(pq, axis=0)),
        "per_tissue": per_tissue,
    }
