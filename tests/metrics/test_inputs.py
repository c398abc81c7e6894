"""inputs: unreadable files, wrong layouts and bad ids become one InputError naming the file (and image)."""

from __future__ import annotations

import numpy as np
import pytest

from cellprobe.errors import InputError
from cellprobe.metrics.inputs import (
    as_ids,
    check_conic_stack,
    check_pannuke_stack,
    check_same_layout,
    load_npy,
    load_types,
)


def test_load_npy_memory_maps_a_good_file(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(6).reshape(2, 3))
    arr = load_npy(path, "labels")
    assert isinstance(arr, np.memmap) and arr.sum() == 15


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (None, "no such file"),
        (lambda p: p.write_bytes(b"not numpy at all"), "not a readable .npy"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "not a readable .npy"),
        (lambda p: p.write_bytes(_npy_bytes(np.zeros((4, 64), np.int32))[:-100]), "not a readable .npy"),
        (lambda p: p.write_bytes(negative_shape_npy()), "not a readable .npy"),  # the twenty-fourth probe
    ],
)
def test_load_npy_errors_name_the_file(tmp_path, write, message):
    path = tmp_path / "x.npy"
    if write is not None:
        write(path)
    with pytest.raises(InputError, match=message) as err:
        load_npy(path, "labels")
    assert err.value.path == str(path)


def test_load_npy_refuses_an_npz_archive(tmp_path):
    path = tmp_path / "x.npy"
    with open(path, "wb") as handle:
        np.savez(handle, a=np.zeros(3))
    with pytest.raises(InputError, match="npz"):
        load_npy(path, "labels")


def _npy_bytes(arr):
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_layout_checks():
    with pytest.raises(InputError, match="2 channels"):
        check_conic_stack(np.zeros((1, 4, 4, 3), np.int32), "T.npy")
    with pytest.raises(InputError, match=r"\(N, H, W, 2\)"):
        check_conic_stack(np.zeros((4, 4, 2), np.int32), "T.npy")
    with pytest.raises(InputError, match="float ids"):
        check_conic_stack(np.zeros((1, 4, 4, 2)), "T.npy")
    with pytest.raises(InputError, match="dtype"):
        check_conic_stack(np.zeros((1, 4, 4, 2), complex), "T.npy")
    check_pannuke_stack(np.zeros((1, 4, 4, 6)), "masks.npy", 5)  # float64 masks as released
    with pytest.raises(InputError, match="expected 6 channels"):
        check_pannuke_stack(np.zeros((1, 4, 4, 5)), "masks.npy", 5)
    with pytest.raises(InputError, match="3 images"):
        check_same_layout(np.zeros((2, 4, 4, 2)), np.zeros((3, 4, 4, 2)), "T", "P")


def test_as_ids():
    assert as_ids(np.array([[0.0, 3.0]]), "m[0]", "ids").dtype == np.int64
    with pytest.raises(InputError, match=r"m\[0\]: ids: boolean mask, not integer ids"):
        as_ids(np.array([[True, False]]), "m[0]", "ids")
    with pytest.raises(InputError, match=r"m\[0\]: ids: non-integral id 2.5"):
        as_ids(np.array([[0.0, 2.5]]), "m[0]", "ids")
    with pytest.raises(InputError, match="non-integral id nan"):
        as_ids(np.array([np.nan]), "m[0]", "ids")
    with pytest.raises(InputError, match="negative id -2"):
        as_ids(np.array([1, -2]), "m[0]", "ids")
    with pytest.raises(InputError, match="class id 5 exceeds the number of classes \\(4\\)"):
        as_ids(np.array([5, 1], np.uint8), "m[0]", "class ids", 4)
    assert as_ids(np.zeros((0, 3)), "m", "ids").size == 0


def test_load_types(tmp_path):
    path = tmp_path / "types.npy"
    with pytest.raises(InputError, match=r"needs types\.npy"):
        load_types(path, 2)
    np.save(path, np.array(["Breast", "Colon"]))
    assert load_types(path, 2).tolist() == ["Breast", "Colon"]
    with pytest.raises(InputError, match="2 tissue types for 3 images"):
        load_types(path, 3)
    np.save(path, np.zeros(2))
    with pytest.raises(InputError, match="strings"):
        load_types(path, 2)
    # the twenty-fourth probe: ' Colon' beside 'Colon', or '', were tissues of their own in bPQ and mPQ
    for names, bad in ((["Colon", " Colon"], 1), (["", "Colon"], 0)):
        np.save(path, np.array(names))
        with pytest.raises(InputError, match="is empty or has spaces around it") as err:
            load_types(path, 2)
        assert err.value.path == f"{path}[{bad}]"


def test_a_pannuke_fold_with_a_padded_tissue_name_is_refused(tmp_path):
    from cellprobe.data import fixtures, open_dataset

    root = fixtures.write_pannuke(tmp_path / "p", {1: 2, 2: 2, 3: 2}, size=32)
    types = root / "Fold 1" / "images" / "fold1" / "types.npy"
    if not types.exists():
        types = next(root.glob("Fold 1/**/types.npy"))
    np.save(types, np.array(["Colon", "Colon "]))
    with pytest.raises(InputError, match="is empty or has spaces around it") as err:
        open_dataset(root, split="fold1")
    assert err.value.path == f"{types}[1]"


def negative_shape_npy() -> bytes:
    """A .npy file whose header declares a negative dimension (an OverflowError inside numpy's memory map)."""
    data = _npy_bytes(np.zeros((2, 4, 4, 2), np.int32))
    return data.replace(b"(2, 4, 4, 2)", b"(2, 4, 4,-2)")


def test_a_negative_shape_is_one_line_in_every_npy_reader(tmp_path):
    """The twenty-fourth probe: score, a CoNIC or PanNuke array and a cached tap file whose .npy header declares
    a negative dimension were OverflowError tracebacks."""
    from cellprobe.data.io import load_npy as load_data_npy

    path = tmp_path / "x.npy"
    path.write_bytes(negative_shape_npy())
    with pytest.raises(InputError, match=r"corrupt \.npy header") as err:
        load_data_npy(path)
    assert err.value.path == str(path)
