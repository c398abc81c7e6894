from __future__ import annotations

import numpy as np
import pytest

from cellprobe.errors import InputError
from cellprobe.postprocess import assign_types

from .oracle import one_hot, oracle_maps


def test_probability_weighted_vote_ignores_background():
    inst = np.array([[40, 40, 40, 0], [7, 7, 0, 0]], np.int32)
    prob = np.zeros((3, 2, 4), np.float32)
    prob[0] = 0.9  # background wins every pixel: left out of the vote
    prob[1, 0] = [0.05, 0.05, 0.02, 0]  # instance 40: class 1 sum 0.12 ...
    prob[2, 0] = [0.0, 0.0, 0.08, 0]  # ... beats class 2 sum 0.08 although class 2 wins pixel (0, 2)
    prob[1, 1] = [0.04, 0.04, 0, 0]
    prob[2, 1] = [0.04, 0.04, 0, 0]  # instance 7: a tie goes to the lower class id
    cls_map, classes = assign_types(inst, prob)
    assert classes == {7: 1, 40: 1}
    assert cls_map.dtype == np.uint8
    np.testing.assert_array_equal(cls_map, [[1, 1, 1, 0], [1, 1, 0, 0]])
    prob[2, 0, 2] = 0.2
    assert assign_types(inst, prob)[1] == {7: 1, 40: 2}


def test_ground_truth_probabilities_give_back_the_classes(consep_test):
    inst, cls = consep_test
    for i in (3, 150):
        _, _, _, types = oracle_maps(inst[i], cls[i])
        cls_map, classes = assign_types(inst[i], types)
        np.testing.assert_array_equal(cls_map, cls[i])
        assert set(classes) == set(np.unique(inst[i])) - {0}


def test_huge_sparse_ids_and_empty_maps():
    inst = np.zeros((4, 4), np.int64)
    inst[0, :2] = 2**40
    inst[3, 3] = 5
    prob = one_hot(np.where(inst == 5, 3, np.where(inst > 0, 2, 0)), 4)
    assert assign_types(inst, prob)[1] == {5: 3, 2**40: 2}
    cls_map, classes = assign_types(np.zeros((4, 4), np.int32), prob)
    assert classes == {} and not cls_map.any()


def test_bad_inputs():
    with pytest.raises(InputError, match="channels"):
        assign_types(np.zeros((4, 4), np.int32), np.zeros((1, 4, 4)))
    with pytest.raises(InputError, match="other maps"):
        assign_types(np.zeros((4, 4), np.int32), np.zeros((3, 4, 5)))
    with pytest.raises(InputError, match="integer"):
        assign_types(np.zeros((4, 4), np.float32), np.zeros((3, 4, 4)))
