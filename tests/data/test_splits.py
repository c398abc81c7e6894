from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellprobe.data.splits import kfold_by_source, read_split_file, split_by_source
from cellprobe.errors import InputError


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=2, max_size=60), st.floats(0.05, 0.95), st.integers(0, 99))
def test_split_by_source_never_splits_a_source(groups, fraction, seed):
    sources = [f"img{g}" for g in groups]
    if len(set(sources)) < 2:
        with pytest.raises(InputError, match="only 1 source"):
            split_by_source(sources, fraction, seed)
        return
    train, val = split_by_source(sources, fraction, seed)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(sources)))
    assert len(train) and len(val)
    assert not {sources[i] for i in train} & {sources[i] for i in val}
    again = split_by_source(sources, fraction, seed)
    assert np.array_equal(again[1], val)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=10, max_size=50), st.integers(2, 4))
def test_kfold_by_source_partitions_sources(groups, k):
    sources = [f"s{g}" for g in groups]
    if len(set(sources)) < k:
        with pytest.raises(InputError):
            kfold_by_source(sources, k, 0)
        return
    folds = kfold_by_source(sources, k, 0)
    tests = np.concatenate([t for _, t in folds])
    assert sorted(tests.tolist()) == list(range(len(sources)))
    for train, test in folds:
        assert not {sources[i] for i in train} & {sources[i] for i in test}


def test_split_file_errors(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("patch,fold\na,1\nzz,2\n")
    with pytest.raises(InputError, match=r"s\.csv row 1 \(line 3\): patch 'zz' is not in the dataset"):
        read_split_file(path, ["a", "b"])
    path.write_text("index,split\n0,x\n1,y\n")
    assert {k: v.rows.tolist() for k, v in read_split_file(path, ["a", "b"]).items()} == {"x": [0], "y": [1]}
    path.write_text("index,split\n0,x\n0,y\n1,y\n")
    with pytest.raises(InputError, match=r"row 1 \(line 3\): patch '0' is listed in fold 'y' here and in fold 'x' "
                                         r"at row 0: a patch belongs to one fold"):
        read_split_file(path, ["a", "b"])
    path.write_text("what,ever\n1,2\n")
    with pytest.raises(InputError, match="needs a patch column"):
        read_split_file(path, ["a"])
    with pytest.raises(InputError, match="split file: no such file"):
        read_split_file(tmp_path / "none.csv", ["a"])
    # the twenty-fourth probe: a split file that is a folder or a pipe was "not found"
    import os

    (tmp_path / "dir.csv").mkdir()
    os.mkfifo(tmp_path / "fifo.csv")
    for name, problem in (("dir.csv", "is a folder, not a file"), ("fifo.csv", "is not a regular file")):
        with pytest.raises(InputError, match=f"split file: {problem}"):
            read_split_file(tmp_path / name, ["a"])


def test_repeated_rows_become_repeats(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("img_id,fold\nc,0\na,0\nc,0\nb,1\nc,0\na,0\nd,2\n\n")
    folds = read_split_file(path, ["a", "b", "c", "d"])
    assert list(folds) == ["0", "1", "2"]
    assert folds["0"].rows.tolist() == [0, 2] and folds["0"].repeats.tolist() == [2, 3] and folds["0"].oversampled
    assert folds["1"].rows.tolist() == [1] and folds["1"].repeats.tolist() == [1] and not folds["1"].oversampled


@pytest.mark.parametrize(("text", "problem"), [
    ("img_id,fold\na,0\nb,1\nc,0,9\nd,2\n", r"row 2 \(line 4\): 3 fields, the header has 2"),
    ("img_id,fold\na,0\n\nb,1\nc,0\nd,2\n", r"row 1 \(line 3\): empty row"),
    ("img_id,fold\na,0\nb,1\nc,0\nd,\n", r"row 3 \(line 5\): patch 'd' has an empty fold"),
    ("img_id,fold\na,0\nb,1\nc", r"row 2 \(line 4\): 1 field, the header has 2"),
    ("img_id,fold\na,0\nb,1\n", r"s\.csv: 2 of the dataset's 4 patches are in no fold \(e\.g\. 'c'\)"),
    ("", r"s\.csv: empty split file"),
    ("index,fold\n0,0\nx,1\n", r"row 1 \(line 3\): index 'x' is not an integer"),
    ("index,fold\n0,0\n4,1\n", r"row 1 \(line 3\): index 4 out of range for 4 patches"),
])
def test_malformed_split_file_is_one_line(tmp_path, text, problem):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        read_split_file(path, ["a", "b", "c", "d"])
    assert "\n" not in str(err.value)
