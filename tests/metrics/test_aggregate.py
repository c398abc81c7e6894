"""aggregate: the official formulas on hand-made per-image tables, and re-pooling of resampled rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cellprobe.metrics import aggregate_conic, aggregate_pannuke, pq_terms, score_conic
from cellprobe.metrics.aggregate import conic_image_metrics, num_classes_of, pannuke_image_metrics
from cellprobe.metrics.image import conic_columns, pannuke_columns

from . import plain
from .compare import assert_close
from .corrupt import corrupted_stack, subsample


def _conic_table(rows: list[dict], num_classes: int) -> pd.DataFrame:
    cols = conic_columns(num_classes, False)
    return pd.DataFrame([{c: r.get(c, 0) for c in cols} for r in rows])


def test_pq_terms_eps_differ_between_conic_and_pannuke():
    dq, sq, pq = pq_terms(1, 1, 1, 0.8, 1e-6)
    assert dq == 1 / (1 + 0.5 + 0.5 + 1e-6) and sq == 0.8 / (1 + 1e-6) and pq == dq * sq
    dq0, _, _ = pq_terms(1, 1, 1, 0.8, 0.0)
    assert dq0 == 0.5


def test_conic_image_with_nothing_scores_zero_and_perfect_is_one_up_to_guards():
    table = _conic_table([{}, {"n_true": 3, "n_pred": 3, "tp": 3, "iou_sum": 3.0}], 1)
    metrics = conic_image_metrics(table)
    assert metrics["pq"].iloc[0] == 0.0
    assert metrics["pq"].iloc[1] == (3 / (3 + 1e-6)) ** 2
    assert math.isnan(metrics["aji"].iloc[0]) and math.isnan(metrics["dice2"].iloc[0])
    summary = aggregate_conic(table)
    assert summary["pq"] == metrics["pq"].mean()


def test_mpq_plus_pools_counts_over_images_before_the_ratio():
    rows = [
        {"tp_c1": 1, "fp_c1": 0, "fn_c1": 1, "iou_sum_c1": 0.9, "tp_c2": 0, "fn_c2": 1},
        {"tp_c1": 3, "fp_c1": 1, "fn_c1": 0, "iou_sum_c1": 2.4, "fp_c2": 2},
    ]
    summary = aggregate_conic(_conic_table(rows, 2), class_names=["a", "b"])
    pq1 = 4 / (4 + 0.5 + 0.5 + 1e-6) * (3.3 / (4 + 1e-6))
    assert summary["pq_per_class"] == pytest.approx([pq1, 0.0], abs=1e-15)
    assert summary["mpq_plus"] == pytest.approx(pq1 / 2, abs=1e-15)
    assert summary["class_names"] == ["a", "b"]


def test_detection_f1_per_class_formula():
    # pairs (true type, pred type): (1,1) (1,2) (2,2) (2,2); unpaired truth: one of type 1; extra: two of type 2
    row = {"det_pair_t1_p1": 1, "det_pair_t1_p2": 1, "det_pair_t2_p2": 2, "det_fn_t1": 1, "det_fp_p2": 2}
    summary = aggregate_conic(_conic_table([row], 2))
    assert summary["f1_detection"] == 8 / 11
    assert summary["accuracy_type"] == 3 / 4
    assert summary["f1_per_class"] == [2 / 5, 4 / 8]


def test_r2_per_class_with_sklearn_conventions_and_region_choice():
    rows = [{"true_count_c1": t, "pred_count_c1": p, "true_count_c2": 2, "pred_count_c2": q}
            for t, p, q in ((1, 2, 2), (3, 3, 2), (5, 4, 2))]
    summary = aggregate_conic(_conic_table(rows, 2))
    r2_c1 = 1 - (1 + 0 + 1) / 8
    assert summary["r2_per_class"] == [r2_c1, 1.0]  # constant truth predicted exactly: 1 (sklearn)
    assert summary["r2"] == (r2_c1 + 1.0) / 2 and summary["r2_region"] == "patch"
    with pytest.raises(ValueError, match="crop"):
        aggregate_conic(_conic_table(rows, 2), r2_region="crop")
    one = aggregate_conic(_conic_table(rows[:1], 2))
    assert math.isnan(one["r2"])


def _pannuke_table(rows, tissues, num_classes=2):
    table = pd.DataFrame([{c: r.get(c, 0) for c in pannuke_columns(num_classes)} for r in rows])
    table.insert(0, "tissue", tissues)
    return table


def test_pannuke_nan_rules_and_tissue_averaging():
    rows = [
        # image 0: truth has class 1 only; a class-2 false positive does not count (NaN for class 2)
        {"tp": 1, "fn": 1, "iou_sum": 0.8, "tp_c1": 1, "fn_c1": 1, "iou_sum_c1": 0.8, "fp_c2": 1},
        # image 1: empty truth: every PQ NaN
        {"fp": 2, "fp_c1": 2},
        # image 2: perfect on class 2
        {"tp": 1, "iou_sum": 1.0, "tp_c2": 1, "iou_sum_c2": 1.0},
    ]
    table = _pannuke_table(rows, ["x", "x", "y"])
    image = pannuke_image_metrics(table)
    pq0 = (1 / 1.5) * (0.8 / (1 + 1e-6))
    pq2 = 1.0 / (1 + 1e-6)
    assert image["bpq"].tolist()[0] == pq0 and math.isnan(image["bpq"].iloc[1])
    assert math.isnan(image["pq_c2"].iloc[0]) and math.isnan(image["mpq"].iloc[1])
    summary = aggregate_pannuke(table)
    assert summary["bpq_image"] == pytest.approx((pq0 + pq2) / 2)
    assert summary["bpq"] == pytest.approx((pq0 + pq2) / 2)
    assert summary["pq_per_class"] == [pq0, pq2]
    assert summary["per_tissue"]["x"] == {"bpq": pq0, "mpq": pq0, "num_images": 2}
    # tissue averaging differs from image averaging once tissues have different sizes
    table = _pannuke_table([rows[0], rows[0], rows[2]], ["x", "x", "y"])
    summary = aggregate_pannuke(table)
    assert summary["mpq"] == pytest.approx((pq0 + pq2) / 2)
    assert summary["mpq_image"] == pytest.approx((2 * pq0 + pq2) / 3)


def test_num_classes_of_ignores_other_columns():
    assert num_classes_of(_conic_table([{}], 3)) == 3


def test_resampled_rows_reaggregate_like_the_resampled_images(consep_labels):
    """The bootstrap's use: aggregate(rows[idx]) == the metric computed on images[idx]."""
    idx = subsample(consep_labels, 5, seed=11)
    true = consep_labels[idx]
    pred = corrupted_stack(true, seed=2, num_classes=4)
    result = score_conic(true, pred, radius=12.0)
    boot = np.random.default_rng(0).integers(0, len(idx), size=len(idx))
    assert_close(aggregate_conic(result.per_image.iloc[boot]), plain.conic_summary(true[boot], pred[boot], 4, 12.0))
