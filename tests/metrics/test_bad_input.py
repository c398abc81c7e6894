"""Bad input found by probing `cellprobe score` and the metrics API: each is one InputError naming the file and
image (or the parameter), raised before any memory is sized by a bad value; valid input scores as before."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from cellprobe.errors import InputError
from cellprobe.metrics import (
    ConicAccumulator,
    aggregate_conic,
    score_conic,
    score_maps,
    score_pannuke,
)
from cellprobe.metrics.inputs import load_npy, load_types

from .compare import same

SOURCES = ("T.npy", "P.npy")


def _labels(n: int = 2, size: int = 32) -> np.ndarray:
    """(n, size, size, 2) int64 labels: 4 square nuclei per image (classes 1, 2, 3, 1), ids 1..4 + offset."""
    out = np.zeros((n, size, size, 2), np.int64)
    for k in range(n):
        for j, c in enumerate((1, 2, 3, 1)):
            out[k, 2 + 7 * j : 7 + 7 * j, 3 + k : 9 + k] = (10 * k + j + 1, c)
    return out


def _prediction(true: np.ndarray) -> np.ndarray:
    """Nuclei shifted by a pixel, one dropped, one spurious: PQ below 1, every class present."""
    pred = np.roll(true, 1, axis=2)
    pred[0, 9:14] = 0
    pred[1, 26:31, 20:26] = (77, 2)
    return pred


@pytest.fixture
def peak_memory():
    """Peak traced allocation (bytes) inside the ``with`` block of the returned context."""

    class Peak:
        def __enter__(self):
            tracemalloc.start()
            return self

        def __exit__(self, *exc):
            self.bytes = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

    return Peak


# --- 2. huge ids: bounded memory, identical metrics, or one line -------------------------------------------------


@pytest.mark.parametrize("offset", [2**40, 2**62, 2**64 - 2**20])
def test_huge_instance_ids_score_like_small_ones_in_bounded_memory(offset, peak_memory):
    """uint64 instance ids >= 2**40 got the process killed (21 GB); around 2**62 they overflowed silently."""
    true = _labels()
    pred = _prediction(true)
    ref = score_conic(true, pred, num_classes=3)
    spread = pred.astype(np.uint64)
    inst = spread[..., 0]
    inst[inst > 0] += np.uint64(offset)  # same order, huge values
    with peak_memory() as peak:
        got = score_conic(true.astype(np.uint64), spread, num_classes=3)
    assert same(got.summary, ref.summary)
    assert peak.bytes < 50 * 2**20
    maps = score_maps(list(true[..., 0]), list(true[..., 1]), list(spread[..., 0]), list(spread[..., 1]),
                      num_classes=3)
    assert same(maps.summary, ref.summary)


def test_huge_instance_ids_in_pannuke_masks():
    true = _labels()
    masks_t = np.zeros((2, 32, 32, 4), np.uint64)
    for c in (1, 2, 3):
        masks_t[..., c - 1] = true[..., 0] * (true[..., 1] == c)
    masks_p = masks_t.copy()
    masks_p[masks_p > 0] += np.uint64(2**63 + 5)  # wrapped negative in int64 before (bPQ 1.0 -> 0.67)
    ref = score_pannuke(masks_t, masks_t, ["a", "b"]).summary
    assert same(score_pannuke(masks_t, masks_p, ["a", "b"]).summary, ref)


def test_huge_class_ids_are_refused_before_any_allocation(peak_memory):
    """A class id of 2**31 - 1 raised MemoryError: the class list was sized by it."""
    true = _labels()
    pred = true.copy()
    pred[1, 2:7, 4:10, 1] = 2**31 - 1
    with peak_memory() as peak, pytest.raises(InputError, match=r"P\.npy\[1\]: class ids: class id 2147483647 "):
        score_conic(true, pred, sources=SOURCES)
    assert peak.bytes < 20 * 2**20
    true[1, 2:7, 4:10, 1] = 2**31 - 1
    with peak_memory() as peak, pytest.raises(InputError, match=r"T\.npy\[1\]: class id 2147483647: more than 255"):
        score_conic(true, pred, sources=SOURCES)
    assert peak.bytes < 20 * 2**20
    with pytest.raises(InputError, match=r"number of classes: 100000 is outside 0\.\.255"):
        score_maps([true[0, ..., 0]], [true[0, ..., 1]], [true[0, ..., 0]], [true[0, ..., 1]], num_classes=100000)


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, r"p\[0\]: instance ids: negative id -1"), (1e300, r"p\[0\]: instance ids: id 1e\+300 is too large"),
     (np.inf, r"p\[0\]: instance ids: non-integral id inf")],
)
def test_negative_and_out_of_range_ids_are_refused(value, message):
    good = np.zeros((1, 8, 8, 6))
    bad = good.copy()
    bad[0, 1, 1, 0] = value
    with pytest.raises(InputError, match=message):
        score_pannuke(good, bad, ["a"], sources=("t", "p"))


# --- 3. swapped channels -------------------------------------------------------------------------------------------


def test_swapped_channels_are_named():
    """A labels.npy with instance ids in channel 1 was scored as one class per instance id (71 classes)."""
    true = _labels()
    swapped = true[..., ::-1].copy()
    look_swapped = "the two channels look swapped: channel 1 holds what look like instance ids"
    with pytest.raises(InputError, match=r"T\.npy\[0\]: invalid truth: the two channels look swapped") as err:
        score_conic(swapped, true, sources=SOURCES)  # classes inferred from the (swapped) truth
    assert "several classes" in err.value.problem
    with pytest.raises(InputError, match=rf"T\.npy\[0\]: {look_swapped}.*class id 4 exceeds"):
        score_conic(swapped, true, class_names=["a", "b", "c"], sources=SOURCES)
    with pytest.raises(InputError, match=rf"P\.npy\[0\]: {look_swapped}.*class id 4 exceeds"):
        score_conic(true, swapped, sources=SOURCES)
    # an out-of-range class that is not a swap says only that
    pred = true.copy()
    pred[0, 2:7, 3:9, 1] = 9
    with pytest.raises(InputError, match=r"P\.npy\[0\]: class ids: class id 9 exceeds") as err:
        score_conic(true, pred, sources=SOURCES)
    assert "swapped" not in str(err.value)


# --- 4. the truth as strict as the dataset readers; predictions only what the metrics need ------------------------


def _two_classes(t):
    t[0, 2:4, 3:9, 1] = 2  # instance 1 (class 1) gets class 2 on two rows


def _stray_class(t):
    t[1, 0, 0] = (0, 3)


def _class_zero(t):
    t[1, 2:7, 4:10, 1] = 0


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_two_classes, r"T\.npy\[0\]: invalid truth: instance 1 \(at row 2, column 3\) has several classes \[1, 2\]"),
        (_stray_class, r"T\.npy\[1\]: invalid truth: class 3 pixels outside every instance \(first at row 0, column 0"),
        (_class_zero, r"T\.npy\[1\]: invalid truth: instance 11 \(at row 2, column 4\) has class 0 pixels"),
    ],
)
def test_invalid_truth_is_refused(corrupt, message):
    true = _labels()
    pred = _prediction(true)
    corrupt(true)
    with pytest.raises(InputError, match=message):
        score_conic(true, pred, num_classes=3, sources=SOURCES)
    # the same maps as a prediction are legal: a class map may split an instance, leave part of it
    # unclassified, or mark pixels outside every instance (they belong to no instance, as officially)
    score_conic(_labels(), true, num_classes=3, sources=SOURCES)
    maps = [list(x) for x in (_labels()[..., 0], _labels()[..., 1], true[..., 0], true[..., 1])]
    score_maps(*maps, num_classes=3)
    with pytest.raises(InputError, match=message.replace(r"T\.npy", "truth")):
        score_maps(*maps[2:], *maps[:2], num_classes=3, sources=("truth", "prediction"))


def test_bool_arrays_are_refused():
    true = _labels()
    with pytest.raises(InputError, match=r"T\.npy: labels: boolean masks, not integer ids"):
        score_conic(true > 0, true, num_classes=3, sources=SOURCES)
    with pytest.raises(InputError, match=r"P\.npy: labels: boolean masks"):
        score_conic(true, true > 0, num_classes=3, sources=SOURCES)
    masks = np.zeros((1, 8, 8, 6), bool)
    with pytest.raises(InputError, match=r"t: masks: boolean masks"):
        score_pannuke(masks, masks, ["a"], sources=("t", "p"))
    inst, cls = true[0, ..., 0], true[0, ..., 1]
    with pytest.raises(InputError, match=r"truth\[0\]: class ids: boolean mask"):
        score_maps([inst], [cls > 0], [inst], [cls], num_classes=3, sources=("truth", "prediction"))


def test_pannuke_truth_pixel_in_two_class_channels():
    masks = np.zeros((2, 8, 8, 6))
    masks[1, 2:4, 2:4, 0] = 1
    overlapping = masks.copy()
    overlapping[1, 3:5, 3:5, 2] = 4
    with pytest.raises(InputError, match=r"t\[1\]: invalid truth: pixel \(row 3, column 3\) belongs to several "
                                         r"class channels \[0, 2\]"):
        score_pannuke(overlapping, masks, ["a", "b"], sources=("t", "p"))
    # in a prediction the official binarize defines it: later channels overwrite earlier ones
    assert score_pannuke(masks, overlapping, ["a", "b"]).summary["num_images"] == 2


# --- 6. non-finite thresholds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mpp": float("nan")}, "metric parameter mpp=nan: Input should be a finite number"),
        ({"mpp": float("inf")}, "metric parameter mpp=inf: Input should be a finite number"),
        ({"radius": float("inf")}, "metric parameter radius=inf: Input should be a finite number"),
        ({"radius": float("nan")}, "metric parameter radius=nan: Input should be a finite number"),
        ({"r2_crop": float("inf")}, "metric parameter r2_crop=inf: Input should be a finite number"),
        ({"mpp": 1e-320}, "metric parameter mpp=1e-320: Input should be greater than or equal to 0.01"),
        # the 30th probe: 1e-300 µm/px made a radius of 3e300 px, and a shifted prediction scored F1 1.0
        ({"mpp": 1e-300}, "metric parameter mpp=1e-300: Input should be greater than or equal to 0.01"),
        ({"radius": 1e300}, "metric parameter radius=1e\\+300: Input should be less than or equal to 1000"),
        ({"match_iou": float("nan")}, "metric parameter match_iou=nan: Input should be a finite number"),
    ],
)
def test_non_finite_parameters_are_one_input_error(kwargs, message):
    true = _labels()
    with pytest.raises(InputError, match=message):
        score_conic(true, true, num_classes=3, **kwargs)
    with pytest.raises(InputError, match=message):
        ConicAccumulator(3, **kwargs)
    if set(kwargs) == {"match_iou"}:
        with pytest.raises(InputError, match=message):
            score_pannuke(np.zeros((1, 8, 8, 6)), np.zeros((1, 8, 8, 6)), ["a"], **kwargs)


# --- 7. class names -------------------------------------------------------------------------------------------------


def test_duplicate_or_malformed_class_names_are_refused():
    true = _labels()
    maps = [list(true[..., 0]), list(true[..., 1])] * 2
    calls = [
        lambda names: score_conic(true, true, class_names=names),
        lambda names: score_maps(*maps, num_classes=len(names), class_names=names),
        lambda names: ConicAccumulator(len(names), class_names=names),
        lambda names: score_pannuke(np.zeros((1, 8, 8, len(names) + 1)), np.zeros((1, 8, 8, len(names) + 1)), ["t"],
                                    class_names=names),
        lambda names: aggregate_conic(score_conic(true, true, num_classes=len(names)).per_image, class_names=names),
    ]
    for call in calls:
        with pytest.raises(InputError, match="class names: 'a' is listed twice; class names must be unique"):
            call(["a", "b", "a"])
        with pytest.raises(InputError, match="class names: expected a list of names, got the string 'abc'"):
            call("abc")
        with pytest.raises(InputError, match="class names: '' is not a class name"):
            call(["a", "", "c"])
        with pytest.raises(InputError, match=r"class names: class name 'b\\x1b\[31m' holds the control character"):
            call(["a", "b\x1b[31m", "c"])  # the 28th probe: written into the JSON as it was


# --- 8. files that are not .npy arrays ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_text("instance,class\n1,2\n"), r"not a readable \.npy array \(the file is not in NumPy"),
        (lambda p: p.write_bytes(b""), r"not a readable \.npy array \(the file is not in NumPy"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "holds Python objects .*cellprobe never loads"),
    ],
)
def test_non_npy_files_never_suggest_unsafe_loading(tmp_path, write, message):
    """A text file given as .npy was reported as pickled data to "load unsafely using allow_pickle"."""
    path = tmp_path / "labels.npy"
    write(path)
    for load in (lambda: load_npy(path, "truth labels"), lambda: load_types(path, 1)):
        with pytest.raises(InputError, match=message) as err:
            load()
        assert err.value.path == str(path)
        assert "allow_pickle" not in str(err.value) and "unsafe" not in str(err.value)


# --- the command line: each is one line and exit status 2 -----------------------------------------------------------


def test_score_command_gives_one_line_for_each_gap(cli, tmp_path):
    true = _labels()
    files = {
        "T.npy": true,
        "P.npy": _prediction(true),
        "swapped.npy": true[..., ::-1].copy(),
        "class9.npy": np.where(true == 3, 9, true),
        "none.npy": true[:0],
        "flat.npy": np.zeros((2, 0, 0, 2), np.int64),
        "flat2.npy": np.zeros((2, 0, 0, 2), np.int64),  # another file: one file as both is refused as such
    }
    for name, arr in files.items():
        np.save(tmp_path / name, arr)
    (tmp_path / "text.npy").write_text("not an array\n")

    def run(t, p, *extra):
        rc, out, err = cli("score", "--format", "conic", "--true", tmp_path / t, "--pred", tmp_path / p, *extra)
        assert rc == 2 and "Traceback" not in err and err.count("\n") == 1, (rc, out, err)
        return err

    assert "P.npy" not in run("T.npy", "class9.npy") and "class9.npy[0]" in run("T.npy", "class9.npy")
    assert "swapped.npy[0]" in run("swapped.npy", "P.npy") and "look swapped" in run("swapped.npy", "P.npy")
    assert "no images" in run("none.npy", "none.npy") and "size 0×0" in run("flat.npy", "flat2.npy")
    assert "--mpp must be a finite number > 0, got nan" in run("T.npy", "P.npy", "--mpp", "nan")
    assert "--radius must be a finite number > 0, got inf" in run("T.npy", "P.npy", "--radius", "inf")
    # the 29th probe: --mpp beside --radius changed nothing, and was recorded in the JSON as if it applied
    assert "beside --radius it would change nothing" in run("T.npy", "P.npy", "--radius", "12", "--mpp", "0.5")
    assert "'a' is listed twice" in run("T.npy", "P.npy", "--classes", "a,a")
    assert "listed twice" in run("T.npy", "P.npy", "--classes", "a,b,a")
    text = run("text.npy", "P.npy")
    assert "text.npy" in text and "not in NumPy .npy format" in text and "pickle" not in text
    rc, _, err = cli("score", "--format", "conic", "--true", tmp_path / "T.npy", "--pred", tmp_path / "P.npy")
    assert rc == 0, err


# --- siblings -------------------------------------------------------------------------------------------------------


def test_a_folder_given_as_npy_file_says_so(tmp_path):
    with pytest.raises(InputError, match=r"truth labels: is a folder, expected a \.npy file") as err:
        load_npy(tmp_path, "truth labels")
    assert err.value.path == str(tmp_path)


def test_maps_must_be_two_dimensional():
    """score_maps took the first two axes of a 3-D map (or crashed on a 1-D one)."""
    inst = _labels()[..., 0]
    with pytest.raises(InputError, match=r"truth\[0\]: expected an \(H, W\) instance map, got shape \(2, 32, 32\)"):
        score_maps([inst], [inst], [inst], [inst], num_classes=3, sources=("truth", "prediction"))
    with pytest.raises(InputError, match=r"truth\[0\]: expected an \(H, W\) instance map, got shape \(4,\)"):
        score_maps([np.arange(4)], [np.ones(4, int)], [np.arange(4)], [np.ones(4, int)], num_classes=1,
                   sources=("truth", "prediction"))
