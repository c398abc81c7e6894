"""Pairings between true and predicted instances, from areas and the overlap table (no pixel access).

Each function reproduces one official definition (PanNuke / CoNIC / HoVer-Net evaluation code):
- :func:`iou_pairs`: IoU > threshold pairing (unique for thresholds >= 0.5), the basis of PQ.
- :func:`aji_and_aji_plus_sums`: AJI (each true instance takes its best-IoU prediction, reuse allowed) and
  AJI+ (Hungarian one-to-one pairing), as overall intersection and union sums.
- :func:`dice2_sums`: "ensemble" Dice over every overlapping pair.
- :func:`pair_centroids`: Hungarian pairing of centroids on Euclidean distance, pairs kept within a radius.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from cellprobe.metrics.labels import Overlap

# HoVer-Net's AJI/AJI+ rank candidate pairs by inter / (union + 1e-6); kept so that ties break identically.
_AJI_EPS = 1.0e-6


def pair_iou(ov: Overlap, true_area: np.ndarray, pred_area: np.ndarray) -> np.ndarray:
    """IoU of every overlapping pair of ``ov``."""
    union = true_area[ov.ti] + pred_area[ov.pj] - ov.inter
    return ov.inter / union


def iou_pairs(ov: Overlap, iou: np.ndarray, match_iou: float) -> np.ndarray:
    """Boolean mask over the pairs of ``ov`` that match (IoU > match_iou, strict)."""
    if match_iou < 0.5:
        raise ValueError("IoU pairing is unique only for match_iou >= 0.5")
    return iou > match_iou


def _dense(ov: Overlap, values: np.ndarray, n_true: int, n_pred: int) -> np.ndarray:
    out = np.zeros((n_true, n_pred), dtype=np.float64)
    out[ov.ti, ov.pj] = values
    return out


def _unpaired_area(true_area: np.ndarray, pred_area: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    true_left = np.ones(true_area.size, bool)
    true_left[rows] = False
    pred_left = np.ones(pred_area.size, bool)
    pred_left[cols] = False
    return float(true_area[true_left].sum() + pred_area[pred_left].sum())


def _aji_matrices(ov: Overlap, true_area: np.ndarray, pred_area: np.ndarray):
    n_true, n_pred = true_area.size, pred_area.size
    inter = _dense(ov, ov.inter, n_true, n_pred)
    union = _dense(ov, true_area[ov.ti] + pred_area[ov.pj] - ov.inter, n_true, n_pred)
    return inter, union, inter / (union + _AJI_EPS)


def aji_and_aji_plus_sums(ov: Overlap, true_area: np.ndarray, pred_area: np.ndarray) -> tuple[float, ...]:
    """(inter, union) of AJI, then (inter, union) of AJI+; AJI = inter / union (0/0: both maps empty).

    AJI: each true instance takes the prediction of highest IoU (first on ties), a prediction may serve several.
    AJI+: maximal unique pairing (Hungarian on IoU), pairs with IoU > 0 kept. Both then add the areas of the
    unpaired instances of either side to the union.
    """
    if true_area.size == 0 or pred_area.size == 0:
        everything = float(true_area.sum() + pred_area.sum())
        return 0.0, everything, 0.0, everything
    inter, union, score = _aji_matrices(ov, true_area, pred_area)
    best = np.argmax(score, axis=1)  # first maximum, as np.argmax in the official code
    rows = np.flatnonzero(score[np.arange(true_area.size), best] > 0.0)
    aji = _aji_totals(inter, union, true_area, pred_area, rows, best[rows])
    rows, cols = linear_sum_assignment(-score)
    keep = score[rows, cols] > 0.0
    return (*aji, *_aji_totals(inter, union, true_area, pred_area, rows[keep], cols[keep]))


def _aji_totals(inter, union, true_area, pred_area, rows, cols) -> tuple[float, float]:
    total_inter = float(inter[rows, cols].sum())
    return total_inter, float(union[rows, cols].sum()) + _unpaired_area(true_area, pred_area, rows, cols)


def dice2_sums(ov: Overlap, true_area: np.ndarray, pred_area: np.ndarray) -> tuple[float, float]:
    """(Σ intersection, Σ (|t| + |p|)) over every overlapping pair; DICE2 = 2 · first / second."""
    return float(ov.inter.sum()), float((true_area[ov.ti] + pred_area[ov.pj]).sum())


def pair_centroids(true_xy: np.ndarray, pred_xy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (true, pred) of centroid pairs: Hungarian assignment on Euclidean distance over all points,
    then only the assigned pairs at distance <= radius are kept (HoVer-Net's ``pair_coordinates``)."""
    if true_xy.shape[0] == 0 or pred_xy.shape[0] == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty
    dy = true_xy[:, 0, None] - pred_xy[None, :, 0]
    dx = true_xy[:, 1, None] - pred_xy[None, :, 1]
    dist = np.sqrt(dy * dy + dx * dx)  # same operations, in the same order, as the official code
    rows, cols = linear_sum_assignment(dist)
    keep = dist[rows, cols] <= radius
    return rows[keep], cols[keep]
