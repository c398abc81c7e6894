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
    with pytest.raises(InputError, match="patch 'zz' is not in the dataset"):
        read_split_file(path, ["a", "b"])
    path.write_text("index,split\n0,x\n1,y\n")
    assert {k: v.tolist() for k, v in read_split_file(path, ["a", "b"]).items()} == {"x": [0], "y": [1]}
    path.write_text("index,split\n0,x\n0,y\n")
    with pytest.raises(InputError, match="more than once"):
        read_split_file(path, ["a", "b"])
    path.write_text("what,ever\n1,2\n")
    with pytest.raises(InputError, match="needs a patch column"):
        read_split_file(path, ["a"])
    with pytest.raises(InputError, match="split file not found"):
        read_split_file(tmp_path / "none.csv", ["a"])
