"""score: whole evaluations against the plain implementation on real CoNSeP patches; APIs agree; bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellprobe.errors import InputError
from cellprobe.metrics import (
    ConicAccumulator,
    aggregate_conic,
    aggregate_pannuke,
    score_conic,
    score_maps,
    score_pannuke,
)

from . import plain
from .compare import assert_close, same
from .conftest import CONSEP_CLASSES
from .corrupt import KINDS, corrupted_stack, subsample


def _compare(true, pred, crop=224):
    result = score_conic(true, pred, radius=12.0, r2_crop=crop, class_names=CONSEP_CLASSES)
    assert_close(result.summary, plain.conic_summary(true, pred, 4, 12.0, crop))
    assert same(result.summary, aggregate_conic(result.per_image, class_names=CONSEP_CLASSES))
    return result


def test_conic_matches_plain_on_corrupted_real_patches(consep_labels):
    idx = subsample(consep_labels, 6, seed=0)
    true = consep_labels[idx]
    result = _compare(true, corrupted_stack(true, seed=1, num_classes=4))
    assert 0.2 < result.summary["pq"] < 0.9 and result.summary["r2_region"] == "crop"
    assert result.per_image.index.name == "image" and len(result.per_image) == len(idx)


def test_conic_truth_against_itself(consep_labels):
    idx = subsample(consep_labels, 4, seed=5)
    result = _compare(consep_labels[idx], consep_labels[idx])
    s = result.summary
    assert s["f1_detection"] == 1.0 and s["aji"] == 1.0 and s["r2"] == 1.0
    assert s["mpq_plus"] == pytest.approx(1.0, abs=1e-6) and s["mpq_plus"] < 1.0  # the 1e-6 guards


@pytest.mark.slow
@pytest.mark.parametrize("kinds", [KINDS, ("drop", "spurious"), ("merge", "split", "class_split")])
def test_conic_matches_plain_on_all_test_patches(consep_labels, kinds):
    _compare(consep_labels, corrupted_stack(consep_labels, seed=len(kinds), num_classes=4, kinds=kinds))


def test_workers_give_identical_results(consep_labels):
    idx = subsample(consep_labels, 8, seed=2)
    true = consep_labels[idx]
    pred = corrupted_stack(true, seed=3, num_classes=4)
    one = score_conic(true, pred, r2_crop=224)
    two = score_conic(true, pred, r2_crop=224, workers=2)
    assert same(one.summary, two.summary)
    assert one.per_image.equals(two.per_image)


def test_score_maps_and_accumulator_equal_score_conic(consep_labels):
    idx = subsample(consep_labels, 3, seed=4)
    true = consep_labels[idx]
    pred = corrupted_stack(true, seed=4, num_classes=4)
    ref = score_conic(true, pred, mpp=0.5, num_classes=4)
    assert ref.params["radius"] == 6.0
    maps = [list(x[..., c]) for x in (true, pred) for c in (0, 1)]
    got = score_maps(*maps, num_classes=4, mpp=0.5, image_names=[f"p{i}" for i in idx])
    assert same(got.summary, ref.summary)
    acc = ConicAccumulator(4, mpp=0.5)
    for k in range(len(idx)):
        acc.add(true[k, ..., 0], true[k, ..., 1], pred[k, ..., 0], pred[k, ..., 1])
    assert len(acc) == len(idx) and same(acc.result().summary, ref.summary)
    assert list(got.per_image.index) == [f"p{i}" for i in idx]


def test_per_image_csv_round_trip_reaggregates_exactly(consep_labels, tmp_path):
    """What the benchmark's bootstrap reads back from a run folder gives the same summary."""
    idx = subsample(consep_labels, 4, seed=12)
    true = consep_labels[idx]
    result = score_conic(true, corrupted_stack(true, seed=5, num_classes=4), r2_crop=224)
    result.write(tmp_path / "m.json", tmp_path / "per_image.csv")
    table = pd.read_csv(tmp_path / "per_image.csv", index_col="image")
    assert same(aggregate_conic(table), result.summary)
    types = ["a", "b", "a", "c", "b"][: len(idx)]
    pannuke = score_pannuke(_to_pannuke(true, 4), _to_pannuke(true, 4), types)
    pannuke.write(csv_path=tmp_path / "p.csv")
    assert same(aggregate_pannuke(pd.read_csv(tmp_path / "p.csv", index_col="image")), pannuke.summary)


def test_maps_of_different_sizes():
    a = np.zeros((10, 12), np.int32)
    a[2:5, 2:6] = 3
    b = np.zeros((7, 7), np.int32)
    b[1:3, 1:3] = 1
    ca, cb = (a > 0).astype(np.uint8), (b > 0).astype(np.uint8)
    result = score_maps([a, b], [ca, cb], [a, b], [ca, cb], num_classes=1)
    assert result.summary["pq"] == pytest.approx(1.0, abs=1e-5) and len(result.per_image) == 2


def test_images_without_nuclei_are_legal():
    empty = np.zeros((2, 16, 16, 2), np.int32)
    s = score_conic(empty, empty, num_classes=2).summary
    assert s["pq"] == 0.0 and s["mpq_plus"] == 0.0 and np.isnan(s["aji"]) and np.isnan(s["f1_detection"])


def test_no_images_or_empty_images_are_refused():
    """Zero images, or images of size 0, used to be scored with null metrics."""
    none = np.zeros((0, 16, 16, 2), np.int32)
    with pytest.raises(InputError, match=r"T\.npy: no images: nothing to score"):
        score_conic(none, none, num_classes=2, sources=("T.npy", "P.npy"))
    flat = np.zeros((2, 0, 0, 2), np.int32)
    with pytest.raises(InputError, match=r"T\.npy: images of size 0×0"):
        score_conic(flat, flat, num_classes=2, sources=("T.npy", "P.npy"))
    with pytest.raises(InputError, match=r"masks\.npy: no images"):
        score_pannuke(np.zeros((0, 8, 8, 6)), np.zeros((0, 8, 8, 6)), [], sources=("masks.npy", "p"))
    with pytest.raises(InputError, match=r"masks\.npy: images of size 0×8"):
        score_pannuke(np.zeros((1, 0, 8, 6)), np.zeros((1, 0, 8, 6)), ["a"], sources=("masks.npy", "p"))
    with pytest.raises(InputError, match="no images"):
        score_maps([], [], [], [], num_classes=2)
    zero = np.zeros((0, 0), np.int32)
    with pytest.raises(InputError, match=r"truth\[0\]: image of size 0×0"):
        score_maps([zero], [zero], [zero], [zero], num_classes=2, sources=("truth", "prediction"))
    with pytest.raises(InputError, match="no images were added"):
        ConicAccumulator(2).result()


def test_num_classes_come_from_the_truth_never_from_the_predictions():
    """One predicted instance of class 9 used to make the class list 9 long (mPQ+ 0.75 -> 0.33)."""
    true = np.zeros((1, 16, 16, 2), np.int32)
    for k, c in enumerate((1, 2, 3, 1)):
        true[0, 4 * k : 4 * k + 3, :3] = (k + 1, c)
    pred = true.copy()
    good = score_conic(true, pred).summary
    assert good["class_names"] == ["class1", "class2", "class3"]
    for bad_class in (9, 255, 2**31 - 1):
        pred = true.astype(np.int64)
        pred[0, 12:15, 8:11] = (9, bad_class)
        with pytest.raises(InputError, match=rf"P\.npy\[0\]: class ids: class id {bad_class} exceeds the number "
                                             r"of classes \(3\); the truth holds classes 1\.\.3; declare"):
            score_conic(true, pred, sources=("T.npy", "P.npy"))
    # declared classes: the predictions may use every declared class
    pred[0, 12:15, 8:11] = (9, 4)
    declared = score_conic(true, pred, class_names=["a", "b", "c", "d"]).summary
    assert len(declared["pq_per_class"]) == 4 and declared["mpq_plus"] < good["mpq_plus"]
    with pytest.raises(InputError, match=r"P\.npy\[0\].*class id 4 exceeds.*declared classes are 1\.\.3"):
        score_conic(true, pred, class_names=["a", "b", "c"], sources=("T.npy", "P.npy"))


def _to_pannuke(labels, num_classes):
    masks = np.zeros((*labels.shape[:3], num_classes + 1), np.float64)
    for c in range(1, num_classes + 1):
        masks[..., c - 1] = labels[..., 0] * (labels[..., 1] == c)
    masks[..., num_classes] = labels[..., 0] == 0
    return masks


def test_pannuke_matches_plain_and_agrees_with_conic(consep_labels, consep_sources):
    idx = subsample(consep_labels, 6, seed=7)
    true = consep_labels[idx]
    pred = corrupted_stack(true, seed=8, num_classes=4, kinds=("drop", "shift", "spurious", "relabel"))
    types = [consep_sources[i] for i in idx]
    result = score_pannuke(_to_pannuke(true, 4), _to_pannuke(pred, 4), types, sources=("t", "p"))
    ref = plain.pannuke_summary(_to_pannuke(true, 4), _to_pannuke(pred, 4), types, 4)
    assert_close(result.summary, ref)
    for tissue, values in ref["per_tissue"].items():
        assert result.summary["per_tissue"][tissue]["bpq"] == pytest.approx(values["bpq"], abs=1e-12, nan_ok=True)
    assert same(result.summary, aggregate_pannuke(result.per_image))
    assert result.summary["class_names"] == ["class1", "class2", "class3", "class4"]
    # one class per instance: both formats count the same TP/FP/FN/ΣIoU, binary and per class
    conic = score_conic(true, pred, num_classes=4).per_image
    stats = [c for c in result.per_image.columns if c.split("_c")[0] in ("tp", "fp", "fn", "iou_sum")]
    assert np.allclose(conic[stats].to_numpy(float), result.per_image[stats].to_numpy(float), atol=1e-12)
    # and the per-image binary PQ differs only by CoNIC's 1e-6 in DQ's denominator (NaN: empty truth)
    bpq = result.per_image["bpq"].to_numpy()
    filled = ~np.isnan(bpq)
    assert np.allclose(bpq[filled], conic["pq"].to_numpy()[filled], rtol=1e-5, atol=0)


def test_pannuke_defaults_to_its_five_classes():
    masks = np.zeros((2, 8, 8, 6))
    s = score_pannuke(masks, masks, ["Breast", "Colon"]).summary
    assert s["class_names"][0] == "neoplastic" and np.isnan(s["bpq"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t, p: (t.astype(np.float32), p), "float ids"),
        (lambda t, p: (t, p[:1]), "1 images"),
        (lambda t, p: (t, p[:, :8]), "shape"),
        (lambda t, p: (t[..., :1], p), "2 channels"),
        (lambda t, p: (t, np.where(p == 7, -1, p)), "negative id"),
        (lambda t, p: (t, np.where(p == 2, 9, p)), "class id 9"),
    ],
)
def test_bad_conic_input_names_the_source(mutate, message):
    true = np.zeros((2, 16, 16, 2), np.int64)
    true[:, 2:6, 2:6] = (7, 2)
    true, pred = mutate(true, true.copy())
    with pytest.raises(InputError, match=message) as err:
        score_conic(true, pred, num_classes=4, sources=("T.npy", "P.npy"))
    assert "T.npy" in str(err.value) or "P.npy" in str(err.value)


def test_bad_pannuke_input():
    good = np.zeros((2, 8, 8, 6))
    with pytest.raises(InputError, match="6 channels"):
        score_pannuke(good, good[..., :5], ["a", "b"], sources=("t", "p"))
    with pytest.raises(InputError, match="2 tissue types for 3"):
        score_pannuke(np.zeros((3, 8, 8, 6)), np.zeros((3, 8, 8, 6)), ["a", "b"])
    bad = good.copy()
    bad[1, 0, 0, 2] = 1.5
    with pytest.raises(InputError, match=r"p\[1\].*non-integral"):
        score_pannuke(good, bad, ["a", "b"], sources=("t", "p"), workers=2)
