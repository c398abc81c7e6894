from __future__ import annotations

import json

import numpy as np
import pytest

from cellprobe.data import fixtures
from cellprobe.data.check import check_path, nuclei_per_class


def test_cli_check_reproduces_consep_counts(cli, consep_root, tmp_path):
    rc, out, err = cli("data", "check", consep_root, "--json", tmp_path / "r.json")
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    splits = report["splits"]
    assert report["format"] == "patches"
    assert (splits["train"]["patches"], splits["test"]["patches"]) == (432, 224)
    assert (splits["train"]["nuclei"], splits["test"]["nuclei"]) == (18216, 10330)
    assert splits["train"]["sizes"] == {"256x256": 432}
    assert sum(splits["test"]["nuclei_per_class"].values()) == 10330
    assert splits["train"]["fatal"] == 0 and splits["train"]["duplicated_patches"] == 0
    assert report["cross_split_duplicates"] == []
    # CoNSeP's own outlines: 21 + 11 instances of several separate parts, warned about (not refused)
    assert (splits["train"]["disjoint_instances"], splits["test"]["disjoint_instances"]) == (21, 11)
    assert all(not a["fatal"] for s in splits.values() for a in s["anomalies"] if a["kind"] == "disjoint_instance")
    assert "… and 12 more" in out
    for text in ("432", "224", "18,216", "10,330"):
        assert text in out


def test_anomalies_found_and_reported(cli, tmp_path, synth):
    images, inst, cls = synth
    images, inst, cls = images.copy(), inst.copy(), cls.copy()
    images[5] = images[1]  # duplicate patch
    inst[2][:] = 0  # empty patch
    cls[2][:] = 0
    ids = np.unique(inst[3])[1:]
    cls[3][inst[3] == ids[0]] = 0  # an instance with background class: refused
    names = [f"p{i}" for i in range(6)]
    folder = fixtures.write_patches(tmp_path / "ds" / "train", images, inst, cls, names, names)
    fixtures.write_patches(tmp_path / "ds" / "test", images[:1], inst[:1], cls[:1], ["q0"], ["q0"])
    report = check_path(tmp_path / "ds")
    train = report["splits"]["train"]
    kinds = {a["kind"] for a in train["anomalies"]}
    assert {"empty", "duplicate", "class_mismatch"} <= kinds
    assert train["fatal"] == 1 and train["empty_patches"] == 1 and train["duplicated_patches"] == 2
    assert train["patches"] == 6
    assert report["cross_split_duplicates"] == [{"first": "test/q0", "second": "train/p0"}]
    rc, out, _ = cli("data", "check", tmp_path / "ds", "--split", "train")
    assert rc == 1 and "has background (0) class pixels" in " ".join(out.split())
    np.savez_compressed(folder / "labels.npz", inst=inst.astype(np.float32), cls=cls)
    rc, out, _ = cli("data", "check", folder)
    assert rc == 1 and "instance ids are float" in " ".join(out.split())


def test_cli_check_bad_path_is_one_line(cli, tmp_path):
    rc, _, err = cli("data", "check", tmp_path / "missing")
    assert rc == 2 and err.count("\n") == 1 and "does not exist" in err


def test_nuclei_per_class():
    inst = np.array([[1, 1, 0], [2, 3, 3]])
    cls = np.array([[2, 2, 0], [1, 2, 2]], np.uint8)
    assert nuclei_per_class(inst, cls, 3).tolist() == [0, 1, 2, 0]


def test_check_walks_the_folds_of_a_split_file(tmp_path, synth):
    images, inst, cls = synth
    names = [f"s{i // 2}-{i:04d}" for i in range(6)]
    images = images.copy()
    images[5] = images[0]  # the same patch in train and test: a leak
    root = fixtures.write_conic(tmp_path / "conic", images, inst, cls, names)
    split_file = tmp_path / "folds.csv"
    split_file.write_text("img_id,fold\n" + "".join(f"{n},{f}\n" for n, f in zip(names, "001122", strict=True))
                          + f"{names[0]},0\n")
    report = check_path(root, split_file=split_file, class_names=["a", "b", "c", "d"])
    assert list(report["splits"]) == ["0", "1", "2"]
    assert [report["splits"][f]["patches"] for f in "012"] == [2, 2, 2]
    assert report["cross_split_duplicates"] == [{"first": "0/s0-0000", "second": "2/s2-0005"}]


def test_the_report_is_never_written_into_the_dataset(cli, tmp_path, synth):
    """The thirteenth probe's sibling of score's: `data check ds --json ds/train/patch_info.csv --overwrite`
    replaced a file of the dataset it had just checked."""
    images, inst, cls = synth
    names = [f"p{i}" for i in range(len(images))]
    split = fixtures.write_patches(tmp_path / "ds" / "train", images, inst, cls, names, names)
    before = {p: p.read_bytes() for p in sorted((tmp_path / "ds").rglob("*")) if p.is_file()}
    for target in (split / "patch_info.csv", tmp_path / "ds" / "report.json"):
        rc, _, err = cli("data", "check", tmp_path / "ds", "--json", target, "--overwrite")
        assert rc == 2 and f"{target}: is inside the dataset folder {tmp_path / 'ds'}, which the command reads" in err, err
        assert err.count("\n") == 1
    assert {p: p.read_bytes() for p in sorted((tmp_path / "ds").rglob("*")) if p.is_file()} == before
    assert cli("data", "check", tmp_path / "ds", "--json", tmp_path / "report.json")[0] == 0


@pytest.mark.parametrize(("rewrite", "problem"), [
    (lambda lines: [lines[0]] + ["X," + line for line in lines[1:]], "row 0 (line 2): 4 fields, the header has 3"),
    (lambda lines: [*lines[:2], lines[2] + ",extra", *lines[3:]], "row 1 (line 3): 4 fields, the header has 3"),
    (lambda lines: [*lines[:2], "", *lines[2:]], "row 1 (line 3): empty row"),
    (lambda lines: [*lines[:-1], lines[-1].rsplit(",", 1)[0]],
     "row 5 (line 7): 2 fields, the header has 3 (a truncated file?)"),
])
def test_a_table_row_of_another_width_is_refused_naming_it(cli, tmp_path, synth, rewrite, problem):
    """The thirteenth probe: rows one field wider than the header were read shifted (pandas took the extra first
    field as the row index), so patch_info.csv's names went into the wrong columns with exit 0."""
    images, inst, cls = synth
    names = [f"p{i}" for i in range(len(images))]
    split = fixtures.write_patches(tmp_path / "ds" / "train", images, inst, cls, names, names)
    listing = split / "patch_info.csv"
    lines = listing.read_text().splitlines()
    assert lines[0].count(",") == 2, lines[0]
    listing.write_text("\n".join(rewrite(lines)) + "\n")
    rc, _, err = cli("data", "check", tmp_path / "ds", "--split", "train")
    assert rc == 2 and f"{listing} {problem}" in err and err.count("\n") == 1, err


def test_a_name_with_a_line_break_keeps_the_error_on_one_line(cli, tmp_path, synth):
    """The thirteenth probe: a quoted name holding a line break made a two-line error."""
    images, inst, cls = synth
    names = [f"p{i}" for i in range(len(images))]
    split = fixtures.write_patches(tmp_path / "ds" / "train", images, inst, cls, names, names)
    listing = split / "patch_info.csv"
    lines = listing.read_text().splitlines()
    lines[1] = lines[1].replace("p0", '"p\n0"', 1)
    listing.write_text("\n".join(lines) + "\n")
    rc, _, err = cli("data", "check", tmp_path / "ds", "--split", "train")
    assert rc == 2 and err.count("\n") == 1 and "patch name 'p\\n0' holds the control character '\\n'" in err, err
