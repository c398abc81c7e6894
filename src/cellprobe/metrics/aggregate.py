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
    return sum(1 for col in per_image.columns if re.fullmatch(r"tp_c\d+", col))


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[name].to_numpy(np.float64)


def _class_matrix(df: pd.DataFrame, stat: str, num_classes: int) -> np.ndarray:
    """(N, C) values of ``{stat}_c{c}`` columns."""
    return np.stack([_col(df, f"{stat}_c{c}") for c in range(1, num_classes + 1)], axis=1) if num_classes else (
        np.zeros((len(df), 0))
    )


def default_class_names(num_classes: int) -> list[str]:
    return [f"class{c}" for c in range(1, num_classes + 1)]


def _names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return default_class_names(num_classes)
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    return list(class_names)


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


def _r2_region(per_image: pd.DataFrame, region: str) -> str:
    has_crop = any(col.startswith("true_count_crop_c") for col in per_image.columns)
    if region == "auto":
        return "crop" if has_crop else "patch"
    if region not in ("crop", "patch"):
        raise ValueError(f"r2_region must be 'auto', 'crop' or 'patch', got {region!r}")
    if region == "crop" and not has_crop:
        raise ValueError("per-image table has no central-crop counts (score with r2_crop)")
    return region


def _detection(df: pd.DataFrame, num_classes: int) -> dict[str, Any]:
    types = range(num_classes + 1)
    pairs = np.array([[_col(df, f"det_pair_t{t}_p{p}").sum() for p in types] for t in types]).reshape(
        num_classes + 1, num_classes + 1
    )
    fn_by_type = np.array([_col(df, f"det_fn_t{t}").sum() for t in types])
    fp_by_type = np.array([_col(df, f"det_fp_p{p}").sum() for p in types])
    tp_d, fp_d, fn_d = pairs.sum(), fp_by_type.sum(), fn_by_type.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_d = 2 * tp_d / (2 * tp_d + fp_d + fn_d)
        accuracy = np.trace(pairs) / tp_d
        per_class = []
        for c in range(1, num_classes + 1):
            tp = pairs[c, c]
            fp = pairs[:, c].sum() - tp  # paired, predicted c, true another type
            fn = pairs[c, :].sum() - tp  # paired, true c, predicted another type
            per_class.append(2 * tp / (2 * tp + 2 * fp + 2 * fn + fp_by_type[c] + fn_by_type[c]))
        precision = tp_d / (tp_d + fp_d)
        recall = tp_d / (tp_d + fn_d)
    return {
        "f1_detection": float(f1_d),
        "precision_detection": float(precision),
        "recall_detection": float(recall),
        "accuracy_type": float(accuracy),
        "f1_per_class": _listed(np.asarray(per_class, np.float64)),
    }


def conic_image_metrics(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per-image metric values (for people reading the per-image table), computed from its statistics."""
    dq, sq, pq = pq_terms(*(_col(per_image, s) for s in ("tp", "fp", "fn", "iou_sum")), CONIC_DQ_EPS)
    f = {"pq": pq, "dq": dq, "sq": sq}
    f["aji"] = _ratio(_col(per_image, "aji_inter"), _col(per_image, "aji_union"))
    f["aji_plus"] = _ratio(_col(per_image, "ajip_inter"), _col(per_image, "ajip_union"))
    f["dice"] = _ratio(_col(per_image, "dice_inter"), _col(per_image, "dice_total"), 2.0)
    f["dice2"] = _dice2(per_image)
    return pd.DataFrame(f, index=per_image.index)


def _dice2(per_image: pd.DataFrame) -> np.ndarray:
    """Per-image DICE2: 0 when instances exist but none overlap, NaN when both maps are empty."""
    inter, total = _col(per_image, "dice2_inter"), _col(per_image, "dice2_total")
    any_instance = (_col(per_image, "n_true") + _col(per_image, "n_pred")) > 0
    value = _ratio(inter, total, 2.0)
    return np.where(any_instance & ~(total > 0), 0.0, value)


def aggregate_conic(
    per_image: pd.DataFrame, *, class_names: Sequence[str] | None = None, r2_region: str = "auto"
) -> dict[str, Any]:
    """Summary of a CoNIC-format evaluation from its per-image table (any subset or resample of rows).

    ``r2_region``: count nuclei for R² in the ``"patch"`` or the central ``"crop"``; ``"auto"`` uses the crop
    counts when the table has them.
    """
    num_classes = num_classes_of(per_image)
    names = _names(class_names, num_classes)
    region = _r2_region(per_image, r2_region)
    image = conic_image_metrics(per_image)

    stats = [_class_matrix(per_image, s, num_classes).sum(axis=0) for s in ("tp", "fp", "fn", "iou_sum")]
    dq_c, sq_c, pq_c = pq_terms(*stats, CONIC_DQ_EPS)
    infix = "_crop" if region == "crop" else ""
    true_counts = _class_matrix(per_image, f"true_count{infix}", num_classes)
    pred_counts = _class_matrix(per_image, f"pred_count{infix}", num_classes)
    r2_c = _r2(true_counts, pred_counts)

    summary: dict[str, Any] = {
        "format": "conic",
        "num_images": len(per_image),
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
    summary.update(_detection(per_image, num_classes))
    for key in ("aji", "aji_plus", "dice", "dice2"):
        summary[key] = float(_nanmean(image[key])) if len(per_image) else float("nan")
    return summary


def pannuke_image_pq(per_image: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(bPQ per image, (N, C) PQ per image and class), NaN where that image's truth (of the class) is empty."""
    num_classes = num_classes_of(per_image)
    tp, fp, fn, iou = (_col(per_image, s) for s in ("tp", "fp", "fn", "iou_sum"))
    bpq = np.where(tp + fn > 0, pq_terms(tp, fp, fn, iou, 0.0)[2], np.nan)
    tp, fp, fn, iou = (_class_matrix(per_image, s, num_classes) for s in ("tp", "fp", "fn", "iou_sum"))
    pq = np.where(tp + fn > 0, pq_terms(tp, fp, fn, iou, 0.0)[2], np.nan)
    return bpq, pq


def pannuke_image_metrics(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per-image ``bpq`` and ``mpq`` (nanmean over classes) and per-class ``pq_c{c}`` values."""
    bpq, pq = pannuke_image_pq(per_image)
    data = {"bpq": bpq, "mpq": _nanmean(pq, axis=1) if pq.shape[1] else np.full(len(bpq), np.nan)}
    data.update({f"pq_c{c + 1}": pq[:, c] for c in range(pq.shape[1])})
    return pd.DataFrame(data, index=per_image.index)


def aggregate_pannuke(per_image: pd.DataFrame, *, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Summary of a PanNuke-format evaluation from its per-image table (needs a ``tissue`` column)."""
    num_classes = num_classes_of(per_image)
    names = _names(class_names, num_classes)
    image = pannuke_image_metrics(per_image)
    bpq_i, mpq_i = image["bpq"].to_numpy(), image["mpq"].to_numpy()
    tissues = per_image["tissue"].astype(str).to_numpy()
    per_tissue: dict[str, dict[str, Any]] = {}
    for tissue in sorted(set(tissues)):
        sel = tissues == tissue
        per_tissue[tissue] = {
            "bpq": float(_nanmean(bpq_i[sel])),
            "mpq": float(_nanmean(mpq_i[sel])),
            "num_images": int(sel.sum()),
        }
    tissue_bpq = [v["bpq"] for v in per_tissue.values()]
    tissue_mpq = [v["mpq"] for v in per_tissue.values()]
    pq = image[[f"pq_c{c}" for c in range(1, num_classes + 1)]].to_numpy(np.float64)
    return {
        "format": "pannuke",
        "num_images": len(per_image),
        "class_names": names,
        "bpq": float(_nanmean(tissue_bpq)),
        "mpq": float(_nanmean(tissue_mpq)),
        "bpq_image": float(_nanmean(bpq_i)),
        "mpq_image": float(_nanmean(mpq_i)),
        "pq_per_class": _listed(_nanmean(pq, axis=0)) if len(per_image) else [float("nan")] * num_classes,
        "per_tissue": per_tissue,
    }
