"""Gaps a hostile probe found in split files (CISCA-style ``split_file``): a source image leaking across folds,
lenient index and fold values, ambiguous columns. Each is one InputError naming the file and row."""

from __future__ import annotations

import pytest

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.check import check_path
from cellprobe.data.splits import read_split_file, split_file_folds
from cellprobe.errors import InputError

NAMES = ["a", "b", "c", "d"]


def _write(tmp_path, text: str):
    path = tmp_path / "s.csv"
    path.write_text(text)
    return path


def _refused(path, names=NAMES, sources=None) -> InputError:
    with pytest.raises(InputError) as err:
        read_split_file(path, names, sources=sources)
    assert "\n" not in str(err.value)
    return err.value


# --- 1. a source image in two folds is a leak ---------------------------------------------------------------

def _conic_split(tmp_path, conic_root, folds: str):
    """A split file over the conic fixture (patches src0-0000, src0-0001, src1-0002, … : two per source)."""
    names = [f"src{i // 2}-{i:04d}" for i in range(6)]
    return _write(tmp_path, "img_id,fold\n" + "".join(f"{n},{f}\n" for n, f in zip(names, folds, strict=True)))


def test_source_leaking_into_another_fold_is_refused(tmp_path, conic_root):
    split_file = _conic_split(tmp_path, conic_root, "001122")
    assert len(open_dataset(conic_root, split="0", split_file=split_file)) == 2  # by source: fine
    split_file = _conic_split(tmp_path, conic_root, "010122")  # src0-0001 (a training source) in validation
    for split in ("0", "1", None, "all"):
        with pytest.raises(InputError) as err:
            open_dataset(conic_root, split=split, split_file=split_file)
        assert err.value.path == f"{split_file} row 1 (line 3)"
        assert ("source image 'src0' is in fold '1' here (patch 'src0-0001') and in fold '0' at row 0 "
                "(patch 'src0-0000')") in err.value.problem


def test_data_check_refuses_a_source_leaking_into_test(cli, tmp_path, conic_root):
    split_file = _conic_split(tmp_path, conic_root, "001102")  # src2-0005 in train, src2-0004 in test
    with pytest.raises(InputError, match=r"row 5 \(line 7\): source image 'src2' is in fold '2' here"):
        check_path(conic_root, split_file=split_file)
    rc, _, err = cli("data", "check", conic_root, "-o", f"split_file={split_file}")
    assert rc == 2 and err.count("\n") == 1, err
    assert str(split_file) in err and "source image 'src2'" in err and "fold '2'" in err and "fold '0'" in err


def test_source_leak_with_a_folder_sources_file(tmp_path, synth):
    images, inst, _ = synth
    names = [f"i{k}" for k in range(4)]
    folder = fixtures.write_folder(tmp_path / "f", images[:4], inst[:4], None, names, sources=["s0", "s0", "s1", "s1"])
    split_file = _write(tmp_path, "name,fold\ni0,train\ni1,val\ni2,val\ni3,val\n")
    with pytest.raises(InputError, match=r"row 1 \(line 3\): source image 's0' is in fold 'val' here"):
        open_dataset(folder, split="train", split_file=split_file)
    (folder / "sources.csv").unlink()  # each image its own source: no source information, nothing new to say
    assert len(open_dataset(folder, split="val", split_file=split_file)) == 3


def test_patches_without_sources_say_nothing_new(tmp_path):
    path = _write(tmp_path, "img_id,fold\na,0\nb,1\nc,1\nd,2\n")
    assert list(read_split_file(path, NAMES)) == ["0", "1", "2"]  # no sources given
    assert list(read_split_file(path, NAMES, sources=NAMES)) == ["0", "1", "2"]  # each patch its own source
    error = _refused(path, sources=["s0", "s0", "s1", "s2"])
    assert error.path.endswith("s.csv row 1 (line 3)") and "source image 's0'" in error.problem


# --- 2. lenient values and ambiguous columns ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["0_1", "+2", " 3 ", "3 ", "-0", "١", "1.0", "0x1", ""])
def test_index_is_plain_digits(tmp_path, value):
    path = _write(tmp_path, f'index,fold\n0,0\n1,0\n2,0\n"{value}",1\n')
    error = _refused(path)
    assert error.path.endswith("row 3 (line 5)") and f"index '{value}' is not an integer" in error.problem


def test_one_patch_spelled_two_ways_is_refused_naming_both_rows(tmp_path):
    path = _write(tmp_path, "index,fold\n0,0\n1,0\n00,0\n2,1\n3,2\n")
    error = _refused(path)
    assert error.path.endswith("row 2 (line 4)")
    assert "index '00' is patch 0, written '0' at row 0" in error.problem
    path.write_text("index,fold\n000,0\n001,0\n000,0\n002,1\n003,2\n")  # zero-padded throughout: one spelling
    assert read_split_file(path, NAMES)["0"].repeats.tolist() == [2, 1]


@pytest.mark.parametrize(("text", "row", "problem"), [
    ("img_id,fold\na,0\nb, 0\nc,1\nd,2\n", 1, "fold ' 0' has surrounding whitespace"),
    ("img_id,fold\na,0\nb,0 \nc,1\nd,2\n", 1, "fold '0 ' has surrounding whitespace"),
    ("img_id,fold\na,0\nb,0.0\nc,1\nd,2\n", 1, "fold '0.0' is the same number as fold '0' (row 0)"),
    ("img_id,fold\na,1\nb,0\nc,+1\nd,2\n", 2, "fold '+1' is the same number as fold '1' (row 0)"),
    ("img_id,fold\na,2\nb,0\nc,1\nd,2e0\n", 3, "fold '2e0' is the same number as fold '2' (row 0)"),
    ("img_id,fold\na,0\nb,all\nc,1\nd,2\n", 1, "fold name 'all' is reserved"),
])
def test_ambiguous_fold_names_are_refused(tmp_path, text, row, problem):
    path = _write(tmp_path, text)
    error = _refused(path)
    assert error.path.endswith(f"s.csv row {row} (line {row + 2})") and problem in error.problem
    with pytest.raises(InputError, match=r"whitespace|same number|reserved"):  # data check lists the folds first
        split_file_folds(path)


def test_distinct_fold_names_still_read(tmp_path):
    path = _write(tmp_path, "img_id,fold\na,train\nb,1\nc,01a\nd,all_else\n")
    assert list(read_split_file(path, NAMES)) == ["train", "1", "01a", "all_else"]


def test_fold_and_split_columns_together_are_refused(tmp_path):
    path = _write(tmp_path, "img_id,fold,split\na,0,0\nb,0,1\nc,1,1\nd,2,2\n")
    error = _refused(path)
    assert error.path == str(path) and "has both a 'fold' and a 'split' column" in error.problem
    with pytest.raises(InputError, match="has both a 'fold' and a 'split' column"):
        split_file_folds(path)


def test_a_column_named_twice_is_refused(tmp_path):
    path = _write(tmp_path, "img_id,fold,img_id\na,0,b\nb,0,a\nc,1,c\nd,2,d\n")
    error = _refused(path)
    assert error.path == str(path) and "column 'img_id' appears twice in the header (columns 1 and 3)" in error.problem


def test_patch_columns_that_disagree_are_refused_naming_the_row(tmp_path):
    path = _write(tmp_path, "index,img_id,fold\n0,a,0\n1,b,0\n3,c,1\n3,d,2\n")
    error = _refused(path)
    assert error.path.endswith("row 2 (line 4)")
    assert "'index' 3 is patch 'd' but 'img_id' c is patch 'c': the patch columns disagree" in error.problem
    path.write_text("index,img_id,fold\n0,a,0\n1,b,0\n2,c,1\n3,d,2\n")  # agreeing columns: fine
    assert {f: r.rows.tolist() for f, r in read_split_file(path, NAMES).items()} == {"0": [0, 1], "1": [2], "2": [3]}
