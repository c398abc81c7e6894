"""Test-only datasets (cross-dataset evaluation): every cell is also scored on them, and the report sets those
scores beside the in-domain ones with the same statistics."""

from __future__ import annotations

import pytest

from cellprobe.bench import layout
from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.report import ReportOptions, build_report
from cellprobe.bench.runner import expand, run_bench
from cellprobe.config import parse_config
from cellprobe.errors import InputError

from .conftest import GROUPS, synth

BASE = {
    "datasets": [{"name": "alpha", "path": "/data/a", "folds": [{"train_split": "train", "val_split": "val"}]},
                 {"name": "beta", "path": "/data/b"}],
    "encoders": [{"name": "lite0", "weights": ["pretrained", "random"]}],
}


def _config(**changes) -> BenchConfig:
    return parse_config(BenchConfig, {**BASE, **changes}, "bench.yaml")


def test_cells_of_the_named_training_datasets_are_scored_on_test_only_datasets():
    config = _config(test_datasets=[{"name": "monuseg", "path": "/data/m", "format": "monuseg"},
                                    {"name": "gamma", "path": "/data/g", "split": "all", "trained_on": ["beta"]}])
    tasks = list(expand(config))
    by_dataset = {t.cell.dataset: t.test_only_names for t in tasks}
    assert by_dataset == {"alpha": ("monuseg",), "beta": ("monuseg", "gamma")}


@pytest.mark.parametrize(("entry", "problem"), [
    ({"name": "alpha", "path": "/data/x"}, "'alpha' is already used"),
    ({"name": "m", "path": "/data/m", "trained_on": ["nope"]}, "trained_on names 'nope'"),
    ({"name": "../m", "path": "/data/m"}, "should match pattern"),
    ({"name": "m", "path": "/data/m", "trained_on": []}, "at least 1 item"),
    ({"name": "m", "path": "/data/m", "trained_on": ["alpha", "alpha"]}, "trained_on must be unique"),  # 12th probe
])
def test_bad_test_only_datasets_are_refused_naming_the_file(entry, problem):
    with pytest.raises(InputError) as err:
        _config(test_datasets=[entry])
    assert err.value.path == "bench.yaml" and problem in err.value.problem


def _patches_release(root):
    """A folder in the patches layout (train/, val/, test/), detectable without a format."""
    from tests.training.tiny import make_tiny_data

    data = make_tiny_data(root)
    (data / "val").mkdir(exist_ok=True)
    return data


@pytest.mark.parametrize(("entry", "problem"), [
    ({"split": "train"}, "split 'train' of this data trains the cells of dataset 'alpha'"),
    ({"split": "train", "format": "patches"}, "trains"),
    ({"split": "test", "path_suffix": "/."}, "already tests"),
    ({"split": "all", "path_suffix": "/train"}, "split 'train' of this data trains"),
])
def test_test_only_data_must_be_other_data_however_it_is_spelled(tmp_path, entry, problem):
    from cellprobe.bench.runner import check_distinct_data

    data = _patches_release(tmp_path / "data")
    entry = dict(entry)
    path = str(data) + entry.pop("path_suffix", "")
    config = _config(datasets=[{"name": "alpha", "path": str(data), "format": "patches",
                                "folds": [{"train_split": "train", "val_split": None, "test_split": "test"}]}],
                     test_datasets=[{"name": "m", "path": path, **entry}])
    with pytest.raises(InputError, match=problem) as err:
        check_distinct_data(config)
    assert "test_datasets 'm'" in err.value.problem


def test_a_test_split_that_links_to_the_training_split_is_refused(tmp_path):
    """The twenty-third probe: a fold whose test split was a link to its training split ran (exit 0, a
    warning per cell) and reported test-on-train scores as test scores. The config's own checks compare
    names; the readers' places are compared before any cell runs."""
    import shutil

    from cellprobe.bench.runner import check_cell_inputs

    data = _patches_release(tmp_path / "data")
    shutil.rmtree(data / "val")
    shutil.rmtree(data / "test")
    (data / "test").symlink_to(data / "train")
    config = _config(datasets=[{"name": "alpha", "path": str(data), "format": "patches",
                                "folds": [{"train_split": "train", "val_split": None, "test_split": "test"}]}],
                     encoders=[{"name": "efficientnet-lite0"}])
    with pytest.raises(InputError) as err:
        check_cell_inputs(config)
    assert err.value.path == str(data)
    assert "dataset 'alpha' fold 0: 8 patches of test_split 'test' show images of train_split 'train'" in \
        err.value.problem, err.value


@pytest.mark.parametrize("how", ["another option", "hard-linked copy"])
def test_a_test_only_dataset_showing_training_images_is_refused(tmp_path, how):
    """The twenty-fourth probe: the training dataset listed as a test-only dataset with one more reader option
    (or a hard-linked copy of it) was scored as cross-dataset data, exit 0. The image files are compared."""
    import os

    from cellprobe.bench.runner import check_cell_inputs

    data = _patches_release(tmp_path / "data")
    test = {"name": "m", "path": str(data), "split": "train", "format": "patches", "options": {"mpp": 0.5}}
    if how == "hard-linked copy":
        copy = tmp_path / "copy"
        for path in sorted(data.rglob("*")):
            target = copy / path.relative_to(data)
            if path.is_dir():
                target.mkdir(parents=True)
            else:
                os.link(path, target)
        test = {"name": "m", "path": str(copy), "split": "train", "format": "patches"}
    config = _config(datasets=[{"name": "alpha", "path": str(data), "format": "patches",
                                "folds": [{"train_split": "train", "val_split": None, "test_split": "test"}]}],
                     encoders=[{"name": "efficientnet-lite0"}], test_datasets=[test])
    with pytest.raises(InputError) as err:
        check_cell_inputs(config)
    assert "test_datasets 'm': 8 of its patches show images of split 'train' of dataset 'alpha'" in \
        err.value.problem, err.value


def test_one_dataset_listed_under_two_names_is_refused(tmp_path):
    from cellprobe.bench.runner import check_distinct_data

    data = _patches_release(tmp_path / "data")
    config = _config(datasets=[{"name": "a", "path": str(data), "format": "patches"},
                               {"name": "b", "path": str(data) + "/."}])
    with pytest.raises(InputError, match="datasets 'a' and 'b' are the same data"):
        check_distinct_data(config)


class ScoredElsewhere:
    """A cell function that also returns class-agnostic scores for each test-only dataset of its task."""

    def __init__(self):
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, task, work_dir):
        self.calls.append((task.cell.cell_id, task.test_only_names))
        quality = 0.9 if task.cell.weights == "pretrained" else 0.6
        out = synth.fake_cell_output(task.cell.dataset, task.cell.model, task.cell.seed, quality)
        out.test_only = {name: synth._agnostic_scores(name, task.cell.model, task.cell.seed, quality - 0.2, 8, 48,
                                                      {"scoring": "class-agnostic"})
                         for name in task.test_only_names}
        return out


def test_runner_keeps_test_only_scores_and_a_test_dataset_added_later_reruns_the_cells(tmp_path):
    config = _config(datasets=[BASE["datasets"][1]],
                     encoders=[{"name": "lite0", "weights": ["pretrained"], "group": "general"}])
    fn = ScoredElsewhere()
    run_bench(config, tmp_path, cell_fn=fn)
    assert fn.calls == [("beta__lite0__pretrained__f0__s0", ())]
    later = config.model_copy(update={"test_datasets": _config(
        test_datasets=[{"name": "gamma", "path": "/data/g"}]).test_datasets})
    run_bench(later, tmp_path, cell_fn=fn)
    assert fn.calls[1] == ("beta__lite0__pretrained__f0__s0", ("gamma",))
    results = layout.read_results(tmp_path)
    assert sorted(zip(results["dataset"], results["test_data"], strict=True)) == [("beta", "beta"), ("beta", "gamma")]
    gamma = results[results["test_data"] == "gamma"].iloc[0]
    assert gamma["group"] == "general" and gamma["class_names"] == ["nucleus"]
    run_bench(later, tmp_path, cell_fn=fn)
    assert len(fn.calls) == 2  # now finished: skipped
    changed = later.model_copy(update={"test_datasets": _config(
        test_datasets=[{"name": "gamma", "path": "/data/other"}]).test_datasets})
    with pytest.raises(InputError, match="test_datasets 'gamma' is defined differently"):
        run_bench(changed, tmp_path, cell_fn=fn)


def test_report_sets_cross_dataset_scores_beside_in_domain_ones(tmp_path):
    bench = synth.make_bench(tmp_path / "b", {"uni": 0.95, "vit": 0.6}, datasets=("alpha",), seeds=(0,),
                             n_images=24, n_sources=12, groups=GROUPS, test_only=("gamma",))
    _, md_path = build_report(bench, options=ReportOptions(n_boot=50, n_perm=50))
    md = md_path.read_text()
    assert "## alpha\n" in md and "## gamma (trained on alpha)" in md
    assert "Scored class-agnostic" in md
    table = md.split("## In-domain and cross-dataset", 1)[1].split("## Across datasets", 1)[0]
    assert "| model | in-domain: alpha | gamma |" in table
    uni = next(line for line in table.splitlines() if line.startswith("| uni |"))
    assert uni.count("[") == 2  # a CI in each column
    # the ranking across datasets counts in-domain sections only
    assert "One dataset: no ranking across datasets" in md
    html = (bench / "report.html").read_text()
    assert "In-domain and cross-dataset" in html and "gamma (trained on alpha)" in html
