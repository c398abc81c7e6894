from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellprobe.data.sample import SampleMeta
from cellprobe.data.validate import RawSample, class_mismatch, sample_problems, to_sample
from cellprobe.errors import InputError

META = SampleMeta(dataset="t", name="p", source="s", index=0)


def raw(image=None, inst=None, cls=None, where="labels.npy[3]"):
    image = np.zeros((8, 8, 3), np.uint8) if image is None else image
    if inst is None:
        inst = np.zeros((8, 8), np.int32)
        inst[2:4, 2:4] = 1
        inst[5:7, 5:7] = 2
    if cls is None:
        cls = np.where(inst == 1, 1, np.where(inst == 2, 2, 0)).astype(np.uint8)
    return RawSample(image, inst, cls, META, where)


def test_valid_sample_converted_losslessly():
    r = raw(inst=raw().inst.astype(np.uint16), cls=raw().cls.astype(np.int64))
    s = to_sample(r, num_classes=2)
    assert s.inst.dtype == np.int32 and s.cls.dtype == np.uint8
    assert np.array_equal(s.inst, r.inst) and np.array_equal(s.cls, r.cls)


@pytest.mark.parametrize(("dtype", "offset"), [(np.uint32, 2**31), (np.int64, 2**40), (np.uint64, 2**64 - 2**20)])
def test_instance_ids_beyond_int32_are_renumbered_in_order_not_refused(dtype, offset):
    """Label maps with uint32/uint64 ids (hashes, slide-wide counters) were refused ('does not fit int32')
    while score read the same ids: the sample holds the same instances, numbered 1..n in their order."""
    base = raw()
    inst = np.where(base.inst > 0, base.inst.astype(np.uint64) + np.uint64(offset), 0).astype(dtype)
    s = to_sample(raw(inst=inst, cls=base.cls), num_classes=2)
    assert s.inst.dtype == np.int32 and np.array_equal(s.inst, base.inst)
    no_background = np.full((2, 2), offset, dtype)
    no_background[0, 0] += 1
    assert to_sample(raw(image=np.zeros((2, 2, 3), np.uint8), inst=no_background,
                         cls=np.ones((2, 2), np.uint8)), 1).inst.tolist() == [[2, 1], [1, 1]]
    wrong = raw(inst=inst, cls=base.cls.copy())
    wrong.cls[2, 2] = 2
    with pytest.raises(InputError, match=rf"instance {int(offset) + 1} has several classes \[1, 2\]"):
        to_sample(wrong, num_classes=2)


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: setattr(r, "inst", r.inst.astype(np.float32)), "instance ids are float"),
    (lambda r: r.inst.__setitem__((0, 0), -3), "negative instance id -3"),
    (lambda r: r.cls.__setitem__((2, 2), 2), r"instance 1 has several classes \[1, 2\]"),
    (lambda r: r.cls.__setitem__((0, 0), 1), "class 1 pixels outside every instance"),
    (lambda r: r.cls.__setitem__((2, 2), 0), "instance 1 has background"),
    (lambda r: r.cls.__setitem__((5, 5), 9), "class id 9 outside 0..2"),
    (lambda r: setattr(r, "image", r.image.astype(np.float32)), "image is float32, expected uint8"),
    (lambda r: setattr(r, "image", r.image[..., :2]), "image must be"),
    (lambda r: setattr(r, "cls", r.cls[:4]), "do not match image"),
])
def test_bad_samples_name_file_and_sample(change, message):
    r = raw()
    change(r)
    with pytest.raises(InputError, match=message) as err:
        to_sample(r, num_classes=2)
    assert err.value.path == "labels.npy[3]" or err.value.path is not None


def test_float_labels_only_when_whole_and_allowed():
    r = raw(inst=raw().inst.astype(np.float64), cls=raw().cls.astype(np.float64))
    assert to_sample(r, 2, allow_float_labels=True).inst.dtype == np.int32
    r.inst[2, 2] = 1.5
    with pytest.raises(InputError, match="non-integer"):
        to_sample(r, 2, allow_float_labels=True)


def test_float_image_only_whole_values_in_range():
    img = np.full((8, 8, 3), 200.0)
    assert to_sample(raw(image=img), 2, allow_float_image=True).image.dtype == np.uint8
    img[0, 0, 0] = 300.0
    with pytest.raises(InputError, match=r"0..255"):
        to_sample(raw(image=img), 2, allow_float_image=True)


def test_empty_patch_is_reported_not_fatal():
    r = raw(inst=np.zeros((8, 8), np.int32), cls=np.zeros((8, 8), np.uint8))
    problems = sample_problems(r, 2)
    assert [p.kind for p in problems] == ["empty"] and not problems[0].fatal
    to_sample(r, 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=16, max_size=16), st.lists(st.integers(1, 3), min_size=4, max_size=4))
def test_class_mismatch_iff_ids_and_classes_disagree(ids, classes):
    inst = np.array(ids, np.int32).reshape(4, 4)
    per_id = np.array([0, *classes[:3]], np.uint8)
    cls = per_id[inst]
    assert class_mismatch(inst, cls) is None
    ids_, counts = np.unique(inst[inst > 0], return_counts=True)
    if (counts > 1).any():  # recolour one pixel of a multi-pixel instance: two classes in one instance
        y, x = np.argwhere(inst == ids_[counts > 1][0])[0]
        cls[y, x] = (cls[y, x] % 3) + 1
        assert "several classes" in class_mismatch(inst, cls)
    elif (inst == 0).any():  # a class pixel outside every instance
        y, x = np.argwhere(inst == 0)[0]
        cls[y, x] = classes[3]
        assert "outside every instance" in class_mismatch(inst, cls)
