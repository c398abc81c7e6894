"""Bad benchmark input is refused up front, as one InputError, before anything is written; a damaged
benchmark folder is one InputError in the report."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from cellprobe.bench import layout
from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.report import ReportOptions, build_report
from cellprobe.bench.runner import run_bench
from cellprobe.config import parse_config
from cellprobe.errors import InputError

from .conftest import synth
from .test_runner import CONFIG, FakeCell

FAST = ReportOptions(n_boot=40, n_perm=40)
ENCODERS = [{"name": "efficientnet-lite0", "weights": ["pretrained", "random"], "group": "general"}]


def _config(**changes) -> BenchConfig:
    return parse_config(BenchConfig, {**CONFIG, "seeds": [0], **changes})


def _pannuke(tmp_path):
    from cellprobe.data.fixtures import write_pannuke

    return write_pannuke(tmp_path / "pannuke", {1: 2, 2: 2, 3: 2}, size=32)


def _refused(cfg, out, match, **kwargs):
    cell = FakeCell()
    with pytest.raises(InputError, match=match):
        run_bench(cfg, out, cell, **kwargs)
    assert not out.exists() and cell.attempts == 0


def test_missing_dataset_is_refused_before_anything_is_written(tmp_path):
    _refused(_config(datasets=[{"name": "ds", "path": str(tmp_path / "nowhere")}], encoders=ENCODERS), tmp_path / "out",
             "dataset 'ds': no such file", check_inputs=True)


def test_a_split_that_does_not_open_names_dataset_and_split(tmp_path):
    root = _pannuke(tmp_path)
    good = {"name": "pn", "path": str(root), "format": "pannuke",
            "folds": [{"train_split": "fold1", "val_split": "fold2", "test_split": "fold3"}]}
    run_bench(_config(datasets=[good], encoders=ENCODERS), tmp_path / "ok", FakeCell(), check_inputs=True)  # all splits open
    bad = {**good, "folds": [{"train_split": "fold1", "val_split": "fold2", "test_split": "fold7"}]}
    _refused(_config(datasets=[bad], encoders=ENCODERS), tmp_path / "out", r"dataset 'pn', split 'fold7'", check_inputs=True)


@pytest.mark.parametrize("where", ["fold", "test_datasets"])
def test_a_bad_patch_of_any_split_is_refused_before_any_cell_trains(tmp_path, where):
    """Twenty-fifth probe: a test split whose last patch held an instance of two classes was found only when the
    first cell scored it, after the folder, bench.yaml and a trained cell were made."""
    from cellprobe.data.fixtures import fold_paths

    root = _pannuke(tmp_path)
    masks_path = fold_paths(root, 3)[2]
    masks = np.load(masks_path)
    y, x = np.argwhere(masks[1, ..., 0] > 0)[0]
    masks[1, y, x, 1] = masks[1, y, x, 0]  # one pixel in two class channels
    np.save(masks_path, masks)
    fold = {"train_split": "fold1", "val_split": "fold2", "test_split": "fold3"}
    if where == "fold":
        cfg = _config(datasets=[{"name": "pn", "path": str(root), "format": "pannuke", "folds": [fold]}],
                      encoders=ENCODERS)
        match = r"dataset 'pn', split 'fold3': .*several class channels"
    else:
        other = _pannuke(tmp_path / "other")
        cfg = _config(datasets=[{"name": "pn", "path": str(other), "format": "pannuke", "folds": [fold]}],
                      test_datasets=[{"name": "ext", "path": str(root), "format": "pannuke", "split": "fold3"}],
                      encoders=ENCODERS)
        match = r"test_datasets 'ext', split 'fold3': .*several class channels"
    _refused(cfg, tmp_path / "out", match, check_inputs=True)


def test_unknown_encoder_and_missing_weights_file_are_refused(tmp_path):
    root = _pannuke(tmp_path)
    ds = [{"name": "pn", "path": str(root), "format": "pannuke",
           "folds": [{"train_split": "fold1", "val_split": "fold2", "test_split": "fold3"}]}]
    _refused(_config(datasets=ds, encoders=[{"name": "no-such-encoder"}]), tmp_path / "out",
             "unknown encoder 'no-such-encoder'", check_inputs=True)
    missing = str(tmp_path / "missing.pt")
    _refused(_config(datasets=ds, encoders=[{"name": "efficientnet-lite0", "weights": ["pretrained", missing]}]),
             tmp_path / "out", r"config key 'encoders\.0\.weights\.1': encoder 'efficientnet-lite0': weights "
             r".*missing\.pt: no such file", check_inputs=True)  # the tenth probe: it named only the value, as a path
    # the training section's fit applies to every encoder: one that takes images as they are has none to fit
    _refused(_config(datasets=ds, encoders=ENCODERS, training={"encoder": {"fit": "pad"}}), tmp_path / "out",
             r"config key 'training\.encoder\.fit': encoder 'efficientnet-lite0' has no fit 'pad' \(its fits: "
             r"native\)", check_inputs=True)
    # the 29th probe: taps the decoder cannot take made the folder and failed in every cell
    _refused(_config(datasets=ds, encoders=ENCODERS, training={"encoder": {"taps": [1, 2, 3]}}), tmp_path / "out",
             r"config key 'training\.encoder\.taps': encoder 'efficientnet-lite0' takes 4 distinct increasing "
             r"indices in 0\.\.4 .* got \[1, 2, 3\]", check_inputs=True)


def test_unknown_tune_metric_is_refused_where_the_config_is_read(tmp_path):
    with pytest.raises(InputError, match="config key 'tune_metric': unknown metric 'pqq'"):
        _config(tune_metric="pqq")
    run_bench(_config(tune_metric="mpq_plus"), tmp_path / "ok", FakeCell())


@pytest.mark.parametrize("seeds", [[-1], [2**32]])
def test_seeds_outside_32_bits_are_refused(seeds):
    with pytest.raises(InputError, match="seeds"):
        _config(seeds=seeds)
    _config(seeds=[0, 2**32 - 1])


@pytest.mark.parametrize(("fold", "says"), [
    ({"train_split": "a", "val_split": "b", "test_split": "a"}, "also the train_split"),
    ({"train_split": "a", "val_split": "b", "test_split": "b"}, "also the val_split"),
    ({"train_split": "a", "val_split": "a", "test_split": "c"}, "val_split 'a' is also the train_split"),
    ({"train_split": "test"}, "also the train_split"),  # the default test split
])
def test_leaking_folds_are_refused(fold, says):
    with pytest.raises(InputError, match=says):
        _config(datasets=[{"name": "ds", "path": "/data/ds", "folds": [fold]}])


def test_duplicate_folds_are_refused():
    fold = {"train_split": "f1", "val_split": "f2", "test_split": "f3"}
    with pytest.raises(InputError, match="folds 0 and 1 are the same"):
        _config(datasets=[{"name": "ds", "path": "/data/ds", "folds": [fold, dict(fold)]}])


def test_output_that_is_a_file_is_refused(tmp_path):
    out = tmp_path / "out"
    out.write_text("x")
    cell = FakeCell()
    with pytest.raises(InputError, match="existing file") as info:
        run_bench(_config(), out, cell)
    assert info.value.path == str(out) and out.read_text() == "x" and cell.attempts == 0


@pytest.fixture
def bench(tmp_path):
    return synth.make_bench(tmp_path / "bench", {"uni": 0.95, "vit": 0.6}, datasets=("alpha",), seeds=(0, 1),
                            n_images=8)


def _first_result(bench):
    return sorted((bench / "cells").glob(f"*/{layout.RESULT}"))[0]


@pytest.mark.parametrize("content", ["[]", '"x"', "3"])
def test_a_result_that_is_not_an_object_is_one_error(bench, content):
    path = _first_result(bench)
    path.write_text(content)
    with pytest.raises(InputError, match="JSON object expected") as info:
        build_report(bench, options=FAST)
    assert info.value.path == str(path)


@pytest.mark.parametrize("value", ['"high"', "true", "[1]"])
def test_a_metric_that_is_not_a_number_is_one_error(bench, value):
    path = _first_result(bench)
    res = json.loads(path.read_text())
    path.write_text(json.dumps({**res, "metrics": {**res["metrics"], "pq": "@"}}).replace('"@"', value))
    with pytest.raises(InputError, match="metric 'pq' is not a number") as info:
        build_report(bench, options=FAST)
    assert info.value.path == str(path)


def _record_examples(path):
    from cellprobe.hashing import file_sha256

    result = path.parent / layout.RESULT
    result.write_text(json.dumps({**json.loads(result.read_text()), "examples_sha256": file_sha256(path)}))


def test_a_truncated_examples_file_is_one_error(bench):
    path = _first_result(bench).parent / layout.EXAMPLES
    arrays = {"names": np.array(["a"]), "image": np.zeros((1, 8, 8, 3), np.uint8),
              "true_inst": np.zeros((1, 8, 8), np.int32), "true_cls": np.zeros((1, 8, 8), np.uint8),
              "pred_inst": np.zeros((1, 8, 8), np.int32), "pred_cls": np.zeros((1, 8, 8), np.uint8)}
    np.savez_compressed(path, **arrays)
    path.write_bytes(path.read_bytes()[:50])
    _record_examples(path)  # as if the cell had written it so (the loader's own checks)
    with pytest.raises(InputError, match="unreadable examples file") as info:
        build_report(bench, options=FAST)
    assert info.value.path == str(path)


def test_a_nan_metric_is_said_not_silently_dropped(bench):
    path = _first_result(bench)
    res = json.loads(path.read_text())
    res["metrics"]["pq"] = res["summary"]["pq"] = None  # how result.json writes NaN
    path.write_text(json.dumps(res))
    results = layout.read_results(bench)
    assert results["pq"].isna().sum() == 1 and math.isnan(results["pq"].iloc[0])
    _, md = build_report(bench, options=FAST)
    text = md.read_text()
    assert "no value (NaN) in 1 run(s)" in text and f"{res['model']} fold {res['fold']} seed {res['seed']}" in text


def test_report_out_that_is_a_file_is_refused(bench, tmp_path):
    out = tmp_path / "report"
    out.write_text("x")
    with pytest.raises(InputError, match="must be a folder, and this is a file") as info:
        build_report(bench, out, options=FAST)
    assert info.value.path == str(out) and out.read_text() == "x"


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_report_seed_outside_32_bits_is_refused(seed):
    with pytest.raises(InputError, match="seed"):
        parse_config(ReportOptions, {"seed": seed})
    parse_config(ReportOptions, {"seed": 2**32 - 1})


@pytest.mark.parametrize(("change", "problem"), [
    ({"class_names": "abcd"}, "class_names 'abcd' is not a list of names"),
    ({"fold": "0"}, "'fold' is '0', expected int"),
    ({"model": None}, "'model' is None, expected str"),
    ({"format": "bogus"}, "format 'bogus' is not 'conic' or 'pannuke'"),
    ({"seed": True}, "'seed' is True, expected int"),
    ({"class_names": ["a", "b", "c"]}, "cells of one dataset are compared only when scored alike"),
])
def test_a_result_is_read_as_written(bench, change, problem):
    """The fourteenth probe: a class_names string was list()-ed into letters, fold '0' made the report drop its
    intervals, a result without 'model' was dropped and a bogus format ignored, and cells scored with other
    classes lost their per-class columns, all with exit 0."""
    path = sorted((bench / "cells").glob(f"*/{layout.RESULT}"))[-1]
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(InputError, match=re.escape(problem)) as info:
        build_report(bench, options=FAST)
    assert info.value.path == str(path)


def test_a_cell_folder_copied_under_another_name_is_not_another_run(bench):
    import shutil

    first = _first_result(bench).parent
    copy = first.parent / first.name.replace("__s0", "__s7")
    shutil.copytree(first, copy)
    with pytest.raises(InputError, match="a cell folder copied or renamed is not another run") as info:
        layout.read_results(bench)
    assert info.value.path == str(copy / layout.RESULT)


@pytest.mark.parametrize("change", [{"metrics": {}}, {"metrics": {"pq": 0.5}}, {"summary": {}}])
def test_metrics_that_are_not_the_summarys_are_refused(bench, change):
    """The fourteenth probe: a result with metrics {} was read as NaN metrics while its table still fed the CIs."""
    path = _first_result(bench)
    res = json.loads(path.read_text())
    path.write_text(json.dumps({**res, **change}))
    with pytest.raises(InputError, match="damaged result: its metric") as info:
        layout.read_results(bench)
    assert info.value.path == str(path)


def test_permutations_for_a_benchmark_with_no_paired_test_are_refused(tmp_path):
    """The fourteenth probe: --n-perm on a one-model bench was accepted, and the report then bounded a p-value
    no test computes."""
    one = synth.make_bench(tmp_path / "one", {"uni": 0.9}, datasets=("alpha",), seeds=(0, 1), n_images=8)
    with pytest.raises(InputError, match="every dataset of this benchmark has one model") as info:
        build_report(one, options=ReportOptions(n_boot=50, n_perm=5000))
    assert info.value.path == "--n-perm"
    _, md = build_report(one, options=ReportOptions(n_boot=50))
    assert "smallest p-value" not in md.read_text()
