"""`cellprobe score`: tables, JSON and CSV outputs for both formats; bad input is one line and exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cellprobe.metrics import score_conic

CONIC_KEYS = ("pq", "mpq_plus", "pq_per_class", "r2", "f1_detection", "f1_per_class", "aji", "aji_plus", "dice")
PANNUKE_KEYS = ("bpq", "mpq", "bpq_image", "mpq_image", "pq_per_class", "per_tissue")


def _labels(seed: int = 0, n: int = 3) -> np.ndarray:
    """(n, 32, 32, 2) int32 labels with a few square nuclei of classes 1..3."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 32, 32, 2), np.int32)
    for k in range(n):
        for i in range(1, 6):
            y, x = rng.integers(0, 26, size=2)
            out[k, y : y + 5, x : x + 5] = (i * 3, rng.integers(1, 4))
    return out


@pytest.fixture
def conic_files(tmp_path):
    true, pred = _labels(0), _labels(0)
    pred[1] = _labels(1)[1]
    np.save(tmp_path / "T.npy", true)
    np.save(tmp_path / "P.npy", pred)
    return tmp_path / "T.npy", tmp_path / "P.npy"


def test_conic_table_json_and_csv(cli, conic_files, tmp_path):
    true, pred = conic_files
    rc, out, err = cli("score", "--format", "conic", "--true", true, "--pred", pred, "--classes", "a,b,c",
                       "--radius", "6", "--r2-crop", "24", "--json", tmp_path / "o" / "s.json",
                       "--per-image", tmp_path / "o" / "p.csv")
    assert rc == 0, err
    assert "mPQ+" in out and "AJI+" in out and "3 c" in out
    summary = json.loads((tmp_path / "o" / "s.json").read_text())
    for key in CONIC_KEYS:
        assert key in summary
    assert len(summary["pq_per_class"]) == 3 and summary["class_names"] == ["a", "b", "c"]
    assert summary["params"]["radius"] == 6.0 and summary["r2_region"] == "crop"
    ref = score_conic(np.load(true), np.load(pred), radius=6, r2_crop=24, class_names=["a", "b", "c"]).summary
    assert summary["pq"] == ref["pq"] and summary["f1_per_class"] == ref["f1_per_class"]
    table = pd.read_csv(tmp_path / "o" / "p.csv", index_col="image")
    assert len(table) == 3 and {"tp", "pq", "aji", "true_count_crop_c3"} <= set(table.columns)
    assert table["pq"].iloc[0] == pytest.approx((5 / (5 + 1e-6)) ** 2)


def test_conic_workers_give_the_same_json(cli, conic_files, tmp_path):
    true, pred = conic_files
    outs = []
    for workers in ("1", "2"):
        path = tmp_path / f"{workers}.json"
        assert cli("score", "--format", "conic", "--true", true, "--pred", pred, "--workers", workers,
                   "--json", path)[0] == 0
        outs.append(path.read_text())
    assert outs[0] == outs[1]


def test_pannuke_folders(cli, tmp_path):
    labels = _labels(2, n=4)
    for name in ("true", "pred"):
        (tmp_path / name).mkdir()
        masks = np.zeros((4, 32, 32, 6))
        for c in (1, 2, 3):
            masks[..., c - 1] = labels[..., 0] * (labels[..., 1] == c)
        np.save(tmp_path / name / "masks.npy", masks)
    np.save(tmp_path / "true" / "types.npy", np.array(["Colon", "Colon", "Breast", "Skin"]))
    rc, out, err = cli("score", "--format", "pannuke", "--true", tmp_path / "true", "--pred", tmp_path / "pred",
                       "--json", tmp_path / "s.json")
    assert rc == 0, err
    assert "bPQ (official: mean over tissues)" in out and "Breast" in out and "neoplastic" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    for key in PANNUKE_KEYS:
        assert key in summary
    assert summary["bpq"] == pytest.approx(1.0, abs=1e-5) and summary["pq_per_class"][3] is None
    assert set(summary["per_tissue"]) == {"Colon", "Breast", "Skin"}


def _one_line_error(result, *needles):
    rc, out, err = result
    assert rc == 2, (out, err)
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in line, (needle, line)


def test_bad_conic_inputs(cli, conic_files, tmp_path):
    true, pred = conic_files
    run = lambda p, *extra: cli("score", "--format", "conic", "--true", true, "--pred", p, *extra)  # noqa: E731
    _one_line_error(run(tmp_path / "missing.npy"), "missing.npy", "no such file")
    broken = tmp_path / "broken.npy"
    broken.write_bytes(true.read_bytes()[:-500])
    _one_line_error(run(broken), "broken.npy", "not a readable")
    cases = {
        "float.npy": np.load(pred).astype(np.float32),
        "negative.npy": np.where(np.load(pred) == 3, -3, np.load(pred)),
        "count.npy": np.load(pred)[:2],
        "channels.npy": np.load(pred)[..., :1],
        "shape.npy": np.load(pred)[:, :16],
    }
    for name, arr in cases.items():
        np.save(tmp_path / name, arr)
    _one_line_error(run(tmp_path / "float.npy"), "float.npy", "float ids")
    _one_line_error(run(tmp_path / "negative.npy"), "negative.npy[0]", "negative id")
    _one_line_error(run(tmp_path / "count.npy"), "count.npy", "2 images")
    _one_line_error(run(tmp_path / "channels.npy"), "channels.npy", "2 channels")
    _one_line_error(run(tmp_path / "shape.npy"), "shape.npy", "shape")
    _one_line_error(run(pred, "--classes", "a,b"), "class id 3 exceeds")
    _one_line_error(run(pred, "--r2-crop", "64"), "T.npy[0]", "larger than the image")
    _one_line_error(run(pred, "--radius", "-1"), "--radius must be a finite number > 0")
    _one_line_error(run(pred, "--workers", "-2"), "--workers must be >= 0")
    _one_line_error(run(pred, "--workers", "100000"), "--workers 100000", "core(s) usable here")  # tenth probe
    _one_line_error(run(pred, "--classes", "a,,b"), "empty class name")


def test_bad_pannuke_inputs(cli, tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "p").mkdir()
    np.save(tmp_path / "t" / "masks.npy", np.zeros((2, 8, 8, 6)))
    np.save(tmp_path / "p" / "masks.npy", np.zeros((2, 8, 8, 5)))
    run = lambda *extra: cli("score", "--format", "pannuke", "--true", tmp_path / "t", "--pred",  # noqa: E731
                             tmp_path / "p", *extra)
    _one_line_error(run(), "types.npy", "needs types.npy")
    np.save(tmp_path / "t" / "types.npy", np.array(["a", "b"]))
    _one_line_error(run(), "masks.npy", "expected 6 channels")
    _one_line_error(run("--r2-crop", "10"), "--r2-crop applies to --format conic only")
    rc, _, err = cli("score", "--format", "pannuke", "--true", tmp_path / "t" / "masks.npy", "--pred", tmp_path / "p")
    _one_line_error((rc, "", err), "masks.npy", "expected a folder")


def test_result_files_never_replace_inputs_or_earlier_results(cli, tmp_path):
    import numpy as np

    labels = np.zeros((1, 32, 32, 2), np.int32)
    labels[0, 4:10, 4:10] = (1, 1)
    np.save(tmp_path / "true.npy", labels)
    np.save(tmp_path / "pred.npy", labels)
    base = ("score", "--format", "conic", "--true", tmp_path / "true.npy", "--pred", tmp_path / "pred.npy")
    for extra, problem in ((("--json", tmp_path / "true.npy"), "inputs"),
                           (("--json", tmp_path / "o", "--per-image", tmp_path / "o"), "two outputs"),
                           (("--json", tmp_path), "folder")):
        rc, _, err = cli(*base, *extra)
        assert rc == 2 and problem in err and err.count("\n") == 1, err
    assert np.load(tmp_path / "true.npy").shape == (1, 32, 32, 2)
    assert cli(*base, "--json", tmp_path / "s.json")[0] == 0
    rc, _, err = cli(*base, "--json", tmp_path / "s.json")
    assert rc == 2 and "--overwrite" in err
    assert cli(*base, "--json", tmp_path / "s.json", "--overwrite")[0] == 0


def test_pannuke_results_never_replace_the_arrays_read_from_its_folders(cli, tmp_path):
    """The thirteenth probe: PanNuke's inputs are folders, so `--json true/masks.npy --overwrite` replaced the
    truth's masks (CoNIC's file inputs were protected)."""
    (tmp_path / "t").mkdir()
    (tmp_path / "p").mkdir()
    masks = np.zeros((2, 8, 8, 6))
    masks[:, 2:5, 2:5, 0] = 1
    for folder in ("t", "p"):
        np.save(tmp_path / folder / "masks.npy", masks)
    np.save(tmp_path / "t" / "types.npy", np.array(["a", "b"]))
    kept = {f: (tmp_path / f).read_bytes() for f in ("t/masks.npy", "t/types.npy", "p/masks.npy")}
    for flag in ("--json", "--per-image"):
        for target in kept:
            result = cli("score", "--format", "pannuke", "--true", tmp_path / "t", "--pred", tmp_path / "p",
                         flag, tmp_path / target, "--overwrite")
            _one_line_error(result, target, "is one of the command's inputs")
    assert {f: (tmp_path / f).read_bytes() for f in kept} == kept
    assert cli("score", "--format", "pannuke", "--true", tmp_path / "t", "--pred", tmp_path / "p",
               "--json", tmp_path / "t" / "scores.json")[0] == 0  # beside them is fine


def test_an_output_that_cannot_be_written_is_refused_before_scoring(cli, conic_files):
    true, pred = conic_files
    rc, out, err = cli("score", "--format", "conic", "--true", true, "--pred", pred, "--json", "/proc/no/o.json")
    assert rc == 2 and out == "" and "cannot create or write" in err and err.count("\n") == 1, err


def test_a_dangling_link_at_an_output_is_something_there(cli, conic_files, tmp_path):
    true, pred = conic_files
    (tmp_path / "link.json").symlink_to(tmp_path / "nowhere.json")
    rc, _, err = cli("score", "--format", "conic", "--true", true, "--pred", pred, "--json", tmp_path / "link.json")
    assert rc == 2 and "exists already" in err and (tmp_path / "link.json").is_symlink(), err


def test_the_truth_is_not_scored_against_itself(cli, conic_files, tmp_path):
    """The twenty-fourth probe: --pred the --true file (or a link to it) scored PQ 1.0, exit 0."""
    true, _ = conic_files
    (tmp_path / "link.npy").symlink_to(true)
    for pred in (true, tmp_path / "link.npy"):
        rc, _, err = cli("score", "--format", "conic", "--true", true, "--pred", pred)
        assert rc == 2 and "the truth would be scored against itself" in err and err.count("\n") == 1, err


def test_a_class_no_nucleus_has_is_said_as_it_lowers_mpq_plus(cli, conic_files, tmp_path):
    """The 28th probe: a class list naming one class more than the data holds scored it PQ 0 (F1 undefined) and
    mPQ+ fell from 0.538 to 0.430 without a word. The official CoNIC code counts it so: kept, and said."""
    true, pred = conic_files
    args = ("score", "--format", "conic", "--true", true, "--pred", pred)
    rc, _, err = cli(*args, "--classes", "a,b,c", "--json", tmp_path / "three.json")
    assert rc == 0 and "warning" not in err, err
    rc, _, err = cli(*args, "--classes", "a,b,c,extra", "--json", tmp_path / "four.json")
    assert rc == 0 and err.splitlines() == [
        "warning: class 'extra' (id 4) has no nucleus in the truth nor the predictions: its PQ counts as 0 in "
        "mpq_plus, as in the official CoNIC code, and its F1 is undefined"], err
    three, four = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("three", "four"))
    assert four["pq_per_class"][3] == 0 and four["mpq_plus"] == pytest.approx(three["mpq_plus"] * 3 / 4)


def test_the_empty_class_is_said_where_a_user_reads_scores_not_in_tunings_many(conic_files):
    """Tuning and training score thousands of times: the library's scoring stays silent, score and evaluate say."""
    import warnings

    from cellprobe.data.validate import DataWarning
    from cellprobe.metrics import score_conic
    from cellprobe.metrics.score import say_empty_classes

    true = np.load(conic_files[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        result = score_conic(true, true.copy(), class_names=["a", "b", "c", "extra"])
    with pytest.warns(DataWarning, match=r"class 'extra' \(id 4\) has no nucleus"):
        say_empty_classes(result)
