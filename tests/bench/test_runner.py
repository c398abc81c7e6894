"""The matrix runner with an injected cell function: expansion, skipping, resuming, atomic results, index."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from cellprobe.bench import layout
from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.runner import expand, run_bench
from cellprobe.config import parse_config
from cellprobe.errors import InputError

from .conftest import synth

CONFIG = {
    "name": "t",
    "datasets": [{"name": "ds", "path": "/data/ds", "folds": [
        {"train_split": "f1", "val_split": "f2", "test_split": "f3"},
        {"train_split": "f2", "val_split": "f1", "test_split": "f3"}]}],
    "encoders": [{"name": "lite0", "weights": ["pretrained", "random"], "group": "general"}],
    "seeds": [0, 1],
}


class FakeCell:
    """Pretrained weights give better predictions than random ones; counts calls; can fail on demand."""

    def __init__(self, fail_at: int | None = None, exc: type[BaseException] = KeyboardInterrupt):
        self.calls: list[str] = []
        self.attempts = 0
        self.fail_at, self.exc = fail_at, exc

    def __call__(self, task, work_dir):
        self.attempts += 1
        if self.attempts - 1 == self.fail_at:
            (work_dir / "half-written.tmp").write_text("x")
            raise self.exc("killed")
        self.calls.append(task.cell.cell_id)
        quality = 0.9 if task.cell.weights == "pretrained" else 0.6
        return synth.fake_cell_output(task.cell.dataset, task.cell.model, task.cell.seed, quality)


def _config(**changes) -> BenchConfig:
    return parse_config(BenchConfig, {**CONFIG, **changes})


def test_matrix_expansion_order_and_ids():
    tasks = list(expand(_config()))
    assert len(tasks) == 2 * 2 * 2  # folds × weights × seeds
    ids = [t.cell.cell_id for t in tasks]
    assert len(set(ids)) == len(ids)
    assert tasks[0].cell == layout.Cell("ds", "lite0", "pretrained", 0, 0)
    assert tasks[-1].fold.train_split == "f2"


def test_finished_cells_are_skipped_and_killed_runs_resume(tmp_path):
    cfg = _config()
    killed = FakeCell(fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg, tmp_path, killed)
    assert len(killed.calls) == 3
    assert len(layout.read_results(tmp_path)) == 3
    resumed = FakeCell()
    summary = run_bench(cfg, tmp_path, resumed)
    assert len(summary.skipped) == 3 and len(summary.done) == 5
    assert set(resumed.calls).isdisjoint(killed.calls)
    again = FakeCell()
    assert run_bench(cfg, tmp_path, again).done == [] and again.calls == []
    index = pd.read_csv(tmp_path / layout.INDEX)
    assert len(index) == 8 and {"mpq_plus", "f1_detection", "model", "seed", "fold"} <= set(index.columns)
    assert set(index["model"]) == {"lite0", "lite0 (random)"}


def test_results_and_per_image_tables_are_kept(tmp_path):
    run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    results = layout.read_results(tmp_path)
    row = results[results["weights"] == "pretrained"].iloc[0]
    per_image = pd.read_parquet(f"{row['cell_dir']}/{layout.PER_IMAGE}")
    assert len(per_image) == 8 and per_image["image"].str.startswith("ds_").all()
    from cellprobe.metrics import aggregate_conic

    assert aggregate_conic(per_image.drop(columns="image"))["mpq_plus"] == pytest.approx(row["mpq_plus"])
    assert row["group"] == "general" and row["splits"] == {"train_split": "f1", "val_split": "f2", "test_split": "f3"}
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_errors_are_recorded_and_the_matrix_goes_on(tmp_path):
    summary = run_bench(_config(seeds=[0]), tmp_path, FakeCell(fail_at=0, exc=RuntimeError))
    assert len(summary.failed) == 1 and len(summary.done) == 3
    failed = layout.cell_dir(tmp_path, next(expand(_config(seeds=[0]))).cell)
    assert "RuntimeError: killed" in (failed / "error.txt").read_text()
    with pytest.raises(RuntimeError):
        run_bench(_config(seeds=[0], on_error="stop", name="x"), tmp_path / "other", FakeCell(0, RuntimeError))


def test_a_changed_training_setup_is_refused_in_the_same_folder(tmp_path):
    run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    written = (tmp_path / layout.CONFIG).read_text()
    for training in ({"epochs": 3}, {"cache_features": False}):
        with pytest.raises(InputError, match="'training' differs"):
            run_bench(_config(seeds=[0], training=training), tmp_path, FakeCell())
    assert (tmp_path / layout.CONFIG).read_text() == written
    run_bench(_config(seeds=[0, 1], training={"epochs": 40}), tmp_path, FakeCell())  # the default, spelt out
    run_bench(_config(seeds=[0, 1]), tmp_path, FakeCell())  # extending the matrix is fine
    written = (tmp_path / layout.CONFIG).read_text()
    # they change results too (examples: the patches each cell keeps for the report; the thirteenth probe)
    for key, value in (("tta", 8), ("tune_metric", "aji"), ("tune", False), ("examples", 5)):
        with pytest.raises(InputError, match=f"'{key}' differs"):
            run_bench(_config(seeds=[0, 1], **{key: value}), tmp_path, FakeCell())
    assert (tmp_path / layout.CONFIG).read_text() == written


def test_a_folder_in_use_is_said_before_its_setup_is_compared(tmp_path, held_elsewhere):
    """Twenty-fifth probe (siblings): a benchmark running in the folder is named as that, not as a setup that
    differs from one still being written."""
    run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    with held_elsewhere(tmp_path, "a benchmark"), \
            pytest.raises(InputError, match=r"in use by another cellprobe process \(a benchmark\)"):
        run_bench(_config(seeds=[0], training={"epochs": 3}), tmp_path, FakeCell())


@pytest.mark.parametrize("text, problem", [("[1, 2]\n", "must be a mapping"), ("a: [\n", "not valid YAML"),
                                           ("", "holds no settings")])
def test_a_broken_bench_yaml_in_the_folder_is_one_error_naming_it(tmp_path, text, problem):
    (tmp_path / layout.CONFIG).write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    assert str(tmp_path / layout.CONFIG) in str(err.value)


def test_inputs_changed_under_finished_cells_are_refused(tmp_path):
    """A dataset relabelled, or a weights file replaced, after some cells finished: running on would skip
    those and make new cells from the new version, one report mixing both, unsaid. The folder records its
    inputs' sha256; a changed one that finished cells read is refused (one they did not read is not)."""
    from tests.training.tiny import make_tiny_data

    data = make_tiny_data(tmp_path / "data")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights v1")
    datasets = [{"name": "ds", "path": str(data), "folds": [{"train_split": "train", "test_split": "test"}]}]
    encoders = [{"name": "lite0", "weights": [str(weights)], "group": "general"}]
    out = tmp_path / "bench"
    run_bench(_config(datasets=datasets, encoders=encoders, seeds=[0]), out, FakeCell())
    labels = data / "train" / "labels.npz"
    kept = labels.read_bytes()
    labels.write_bytes(kept + b"\0")
    for what in ("dataset ds", f"weights {weights}"):
        for seeds in ([0, 1], [1]):  # the finished seed-0 cell counts outside this config's matrix too (probe 17)
            cell = FakeCell()
            with pytest.raises(InputError, match=f"{what} changed since 1 finished or partly trained cell") as err:
                run_bench(_config(datasets=datasets, encoders=encoders, seeds=seeds), out, cell)
        assert err.value.path == str(out / ".cellprobe-inputs.json") and cell.attempts == 0
        labels.write_bytes(kept)
        weights.write_bytes(b"weights v2")
    weights.write_bytes(b"weights v1")
    # the sixteenth probe: with the record deleted (or lacking the dataset) a fresh one hid the change
    record = out / ".cellprobe-inputs.json"
    kept_record = record.read_text()
    for damage in (record.unlink, lambda: record.write_text(json.dumps({
            k: v for k, v in json.loads(kept_record).items() if not k.startswith("dataset")}))):
        damage()
        with pytest.raises(InputError, match=r"dataset ds is not recorded .* cannot be shown unchanged"):
            run_bench(_config(datasets=datasets, encoders=encoders, seeds=[0, 1]), out, FakeCell())
    record.write_text(kept_record)
    # a test-only dataset added since: no finished cell read it yet (they will be scored on it), not refused
    from cellprobe.bench.runner import _check_inputs_unchanged

    other = make_tiny_data(tmp_path / "other")
    added = _config(datasets=datasets, encoders=encoders, seeds=[0],
                    test_datasets=[{"name": "other", "path": str(other), "format": "patches", "split": "test"}])
    assert "dataset other" in _check_inputs_unchanged(out, added)
    summary = run_bench(_config(datasets=datasets, encoders=encoders, seeds=[0, 1]), out, FakeCell())
    assert summary.done and summary.skipped  # restored: runs on


def test_data_changed_under_a_killed_cell_is_refused_before_anything_is_written(tmp_path):
    """The seventeenth probe (F13): a cell killed mid-training whose dataset then changed was refused only from
    inside the cell (its run's data check), after a progress line and with the folder's records rewritten. Its
    checkpoint makes it a reader of the dataset, checked up front like a finished cell."""
    from tests.training.tiny import make_tiny_data

    data = make_tiny_data(tmp_path / "data")
    datasets = [{"name": "ds", "path": str(data), "folds": [{"train_split": "train", "test_split": "test"}]}]
    config = _config(datasets=datasets, encoders=[{"name": "lite0", "weights": ["random"], "group": "general"}],
                     seeds=[0])

    def killed_mid_training(task, work_dir):
        (work_dir / layout.CELL_RUN).mkdir()
        (work_dir / layout.CELL_RUN / "config.yaml").write_text(yaml.safe_dump(
            {"data": {"path": str(data)}, "encoder": {"weights": task.cell.weights}}))
        (work_dir / layout.CELL_RUN / "last.ckpt").write_bytes(b"epoch 3")
        raise KeyboardInterrupt("killed")

    out = tmp_path / "bench"
    with pytest.raises(KeyboardInterrupt):
        run_bench(config, out, killed_mid_training)
    labels = data / "train" / "labels.npz"
    labels.write_bytes(labels.read_bytes() + b"\0")
    records = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # the eighteenth probe: a config leaving the killed cell out (another seed) recorded the new version too
    for seeds in ([0], [1]):
        cell = FakeCell()
        with pytest.raises(InputError, match=r"dataset ds changed since 1 finished or partly trained cell\(s\)") \
                as err:
            run_bench(config.model_copy(update={"seeds": seeds}), out, cell)
        assert err.value.path == str(out / ".cellprobe-inputs.json") and cell.attempts == 0
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == records
    # the nineteenth probe: the killed cell's run config made unreadable took it out of the protection
    killed = next((out / "cells").glob("*/run/config.yaml"))
    killed.write_text("data: [")
    with pytest.raises(InputError, match="not valid YAML") as err:
        run_bench(config, out, FakeCell())
    assert err.value.path == str(killed)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == records


def test_a_report_of_a_partly_failed_or_unfinished_matrix_says_so(tmp_path):
    """The fifteenth probe: a report of a benchmark whose second model's cell had no result said 'One model:
    no winner' and nothing about the missing cell. The report reads the folder's matrix and says which cells
    it does not cover (failed ones counted apart), on the page and as a warning line."""
    import warnings

    from cellprobe.bench.report import ReportOptions, build_report
    from cellprobe.data.validate import DataWarning

    options = ReportOptions(n_boot=20, n_perm=20)
    cfg = _config(seeds=[0])
    run_bench(cfg, tmp_path, FakeCell(fail_at=1, exc=RuntimeError))
    tasks = list(expand(cfg))
    (layout.cell_dir(tmp_path, tasks[2].cell) / layout.RESULT).unlink()  # as a killed cell leaves it
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _, md = build_report(tmp_path, options=options)
    said = [str(w.message) for w in seen if issubclass(w.category, DataWarning)]
    note = ("2 of 4 cells of the benchmark's matrix have no result (1 failed: see their error.txt; the others "
            f"unfinished): {tasks[1].cell.cell_id}, {tasks[2].cell.cell_id}")
    assert said == [f"{tmp_path}: {note}. The tables cover finished cells only."], said
    assert f"**Incomplete benchmark:** {note}" in md.read_text()
    assert "Incomplete benchmark" in (tmp_path / "report.html").read_text()
    run_bench(cfg, tmp_path, FakeCell())  # the matrix finished: nothing to say
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _, md = build_report(tmp_path, options=options, overwrite=True)
    assert not [w for w in seen if issubclass(w.category, DataWarning)]
    assert "Incomplete" not in md.read_text()


@pytest.mark.parametrize("damage", ["datasets: ds", "no name", "seeds string", "unknown key"])
def test_a_hand_damaged_bench_yaml_in_the_folder_is_refused_naming_it(tmp_path, damage):
    """The fifteenth probe: the folder's bench.yaml with datasets a string, or a dataset without a name,
    stopped a rerun with a TypeError / KeyError traceback. It is read as strictly as the user's bench file."""
    import yaml

    run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    data = yaml.safe_load((tmp_path / layout.CONFIG).read_text())
    if damage == "datasets: ds":
        data["datasets"] = "ds"
    elif damage == "no name":
        del data["datasets"][0]["name"]
    elif damage == "seeds string":
        data["seeds"] = ["0"]
    else:
        data["epoch"] = 3
    (tmp_path / layout.CONFIG).write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="not the benchmark config cellprobe wrote") as err:
        run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    assert err.value.path == str(tmp_path / layout.CONFIG) and "\n" not in str(err.value)


def test_nothing_is_written_for_a_config_that_is_no_longer_valid(tmp_path):
    cfg = _config(seeds=[0])
    cfg.datasets[0].folds[0].val_split = None  # each change valid on its own; together: no validation, no lr_steps
    cfg.training.data.val_fraction = 0
    cell = FakeCell()
    with pytest.raises(InputError, match=r"datasets\.0\.folds\.0 .*lr_steps"):
        run_bench(cfg, tmp_path / "out", cell)
    assert not (tmp_path / "out").exists() and cell.attempts == 0


def test_config_rejects_unknown_keys_and_duplicates():
    with pytest.raises(InputError, match="epoch"):
        parse_config(BenchConfig, {**CONFIG, "epoch": 3})
    with pytest.raises(InputError, match="unique"):
        parse_config(BenchConfig, {**CONFIG, "encoders": [{"name": "a"}, {"name": "a"}]})
    for changes, problem in (({"seeds": [0, 0]}, "seeds must be unique"),
                             ({"encoders": [{"name": "a", "weights": ["random", "random"]}]}, "weights must be unique")):
        with pytest.raises(InputError, match=problem):
            parse_config(BenchConfig, {**CONFIG, **changes})
    for name in ("../../../escape", "a/b", ".hidden", ""):  # names become folder names under the benchmark
        with pytest.raises(InputError, match=r"datasets\.0\.name"):
            parse_config(BenchConfig, {**CONFIG, "datasets": [{**CONFIG["datasets"][0], "name": name}]})


def test_a_damaged_result_is_not_a_finished_cell(tmp_path):
    cfg = _config(seeds=[0])
    run_bench(cfg, tmp_path, FakeCell())
    task = next(iter(expand(cfg)))
    result = layout.cell_dir(tmp_path, task.cell) / layout.RESULT
    result.write_text(result.read_text()[:20])  # torn
    assert not layout.is_done(tmp_path, task.cell)
    again = FakeCell()
    run_bench(cfg, tmp_path, again)
    assert again.calls == [task.cell.cell_id] and layout.is_done(tmp_path, task.cell)
    table = layout.cell_dir(tmp_path, task.cell) / layout.PER_IMAGE
    for damage in (lambda: table.write_bytes(table.read_bytes()[:100]), table.unlink):
        damage()  # the per-image table torn or lost: the report could not use the cell
        assert not layout.is_done(tmp_path, task.cell)
        run_bench(cfg, tmp_path, again)
        assert layout.is_done(tmp_path, task.cell)
    assert again.calls == [task.cell.cell_id] * 3


def test_feature_caches_stay_inside_the_benchmark_folder(tmp_path):
    task = next(iter(expand(_config(encoders=[{"name": "x/../../y", "weights": ["../w.pt"]}]))))
    from dataclasses import replace

    cache = replace(task, bench_dir=tmp_path).feature_cache_dir()
    assert cache.parent == tmp_path / "feature_cache" and ".." not in cache.name.split("__")


def test_a_second_bench_on_a_folder_in_use_is_refused(tmp_path):
    from cellprobe.locking import exclusive

    cell = FakeCell()
    with exclusive(tmp_path / "out", "a benchmark"), pytest.raises(InputError, match="in use by another"):
        run_bench(_config(seeds=[0]), tmp_path / "out", cell)
    assert cell.attempts == 0 and not (tmp_path / "out" / layout.CONFIG).exists()
    run_bench(_config(seeds=[0]), tmp_path / "out", cell)
    assert cell.attempts == 4


def test_finished_cells_outside_the_current_matrix_are_named(tmp_path):
    run_bench(_config(seeds=[0, 1]), tmp_path, FakeCell())
    summary = run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    assert len(summary.skipped) == 4 and len(summary.outside) == 4
    assert all(cid.endswith("__s1") for cid in summary.outside)


@pytest.mark.parametrize("weights", [["/tmp/a/w.pt", "/tmp/a-w.pt"], ["/tmp/W.pt", "/tmp/w.pt"]])
def test_two_cells_sharing_a_folder_are_refused(tmp_path, weights):
    """Folder names drop '/' and spaces, and case-insensitive file systems merge case: the second cell would
    be skipped as 'already done' with the first one's results."""
    with pytest.raises(InputError, match=r"two cells would share the folder|two weights files share a file name") \
            as err:  # the second pair has one file name: the config itself refuses it
        run_bench(_config(seeds=[0], encoders=[{"name": "lite0", "weights": weights}]), tmp_path / "out", FakeCell())
    assert weights[0] in str(err.value) and weights[1] in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_bench_folder_inside_a_run_folder_is_refused_before_any_cell(tmp_path):
    """Its cells are runs, each refused inside another run's folder: refused once, up front, nothing made. A
    folder that merely holds a file named run.json (no run config beside it, or not cellprobe's) is no run."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"version": "1", "run_format": 2}')
    cell = FakeCell()
    run_bench(_config(seeds=[0]), run / "bench", cell)  # run.json alone: not a run folder
    (run / "config.yaml").write_text("epochs: 1\n")
    (run / "run.json").write_text('{"status": "mine"}')  # a user's own run.json and config.yaml: no run
    run_bench(_config(seeds=[0]), run / "bench1", FakeCell())
    (run / "run.json").write_text('{"version": "1", "run_format": 2}')
    cell = FakeCell()
    with pytest.raises(InputError, match="is inside the run folder") as err:
        run_bench(_config(seeds=[0]), run / "bench2", cell)
    assert err.value.path == str(run / "bench2") and not (run / "bench2").exists() and cell.attempts == 0
    with pytest.raises(InputError, match="is the run folder"):  # the eleventh probe: it ran its cells there
        run_bench(_config(seeds=[0]), run, cell)
    assert sorted(p.name for p in run.iterdir()) == ["bench", "bench1", "config.yaml", "run.json"]


def test_a_result_from_before_the_examples_digest_is_made_again(tmp_path):
    """The twentieth probe: a finished cell whose result.json predates examples_sha256 was skipped as done,
    then its report refused it ('run the benchmark again', which skipped it again). It is made again."""
    run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    result = sorted(tmp_path.glob(f"cells/*/{layout.RESULT}"))[0]
    result.write_text(json.dumps({k: v for k, v in json.loads(result.read_text()).items() if k != "examples_sha256"}))
    cell = FakeCell()
    summary = run_bench(_config(seeds=[0]), tmp_path, cell)
    assert cell.calls == [result.parent.name] and "examples_sha256" in json.loads(result.read_text())
    assert len(summary.done) == 1


def test_a_cell_whose_examples_were_lost_is_made_again(tmp_path):
    """The twenty-first probe: a cell whose recorded examples.npz was deleted was skipped as done, then the
    report refused it ('run the benchmark again', which skipped it again)."""
    run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    examples = sorted(tmp_path.glob(f"cells/*/{layout.EXAMPLES}"))[0]
    examples.unlink()
    cell = FakeCell()
    run_bench(_config(seeds=[0]), tmp_path, cell)
    assert cell.calls == [examples.parent.name] and examples.is_file()


def test_a_cell_run_of_an_earlier_format_is_refused_before_any_cell_runs(tmp_path):
    """The twenty-first probe: a bench whose unfinished cell's run was of run format 2 re-scored another cell
    first, then stopped at that cell with the upgrade hint. It is refused up front."""
    run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    cells = sorted(tmp_path.glob(f"cells/*/{layout.RESULT}"))
    redo = cells[-1].parent
    (redo / layout.RESULT).unlink()  # unfinished
    (redo / layout.CELL_RUN).mkdir()
    from cellprobe import __version__

    (redo / layout.CELL_RUN / "run.json").write_text(json.dumps({"version": __version__, "run_format": 2}))
    cell = FakeCell()
    with pytest.raises(InputError, match="cellprobe upgrade") as err:
        run_bench(_config(seeds=[0]), tmp_path, cell)
    assert err.value.path == str(redo / layout.CELL_RUN) and cell.attempts == 0


@pytest.mark.parametrize("where", ["bench.yaml", "result.json"])
def test_a_folder_in_the_way_of_a_record_is_refused_before_any_cell(tmp_path, where):
    """The twenty-first probe: a cell's result.json (or the folder's bench.yaml) that was a folder gave a
    traceback, the first after the cell had been scored again."""
    run_bench(_config(seeds=[0]), tmp_path, FakeCell())
    path = tmp_path / where if where == "bench.yaml" else sorted(tmp_path.glob(f"cells/*/{layout.RESULT}"))[0]
    path.unlink()
    path.mkdir()
    cell = FakeCell()
    problem = "is in the way of a benchmark record" if where != "bench.yaml" else \
        "is a folder, not a file: the benchmark config cellprobe writes here cannot be read"
    with pytest.raises(InputError, match=problem) as err:
        run_bench(_config(seeds=[0]), tmp_path, cell)
    assert err.value.path == str(path) and cell.attempts == 0


@pytest.mark.parametrize("damage", ["cells a file", "cell a file", "cell a link to nothing", "run a file",
                                    "feature_cache a file", "cell a link to a finished cell elsewhere"])
def test_a_file_in_the_way_of_a_benchmark_folder_is_refused_before_anything_is_written(tmp_path, damage):
    """The twenty-second probe: cells/ (or a cell's folder) that was a file, or a link to nothing, gave a
    traceback after the folder's records were written. It is refused first, naming it."""
    import shutil

    run_bench(_config(seeds=[0]), tmp_path / "done", FakeCell())
    cell_id = sorted((tmp_path / "done" / "cells").iterdir())[0].name
    bench = tmp_path / "b"
    bench.mkdir()
    if damage in ("cells a file", "feature_cache a file"):
        where = bench / damage.split()[0]
        where.write_text("x")
    else:
        (bench / "cells").mkdir()
        where = bench / "cells" / cell_id
        if damage == "cell a file":
            where.write_text("x")
        elif damage == "cell a link to nothing":
            where.symlink_to(tmp_path / "gone")
        elif damage == "cell a link to a finished cell elsewhere":  # the twenty-fourth probe: counted as done
            where.symlink_to(tmp_path / "done" / "cells" / cell_id)
        else:
            shutil.copytree(tmp_path / "done" / "cells" / cell_id, where)
            (where / layout.RESULT).unlink()
            where = where / layout.CELL_RUN
            where.write_text("x")
    before = sorted(p.name for p in bench.iterdir())
    cell = FakeCell()
    with pytest.raises(InputError, match="is in the way of a benchmark folder") as err:
        run_bench(_config(seeds=[0]), bench, cell)
    assert err.value.path == str(where) and cell.attempts == 0
    assert sorted(p.name for p in bench.iterdir()) == before


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_file_or_link_where_the_clusters_logs_go_is_refused_before_anything_is_written(tmp_path, kind):
    """The twenty-third probe (slide's twin): logs/ that was a file gave a traceback once the cluster started;
    a link would have led the workers' logs out of the folder."""
    from cellprobe.cluster import ClusterSpec

    bench = tmp_path / "b"
    bench.mkdir()
    if kind == "file":
        (bench / "logs").write_text("mine")
    else:
        (tmp_path / "elsewhere").mkdir()
        (bench / "logs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="where cellprobe keeps the cluster's logs") as err:
        run_bench(_config(seeds=[0]), bench, FakeCell(), cluster=ClusterSpec("local", workers=1))
    assert err.value.path == str(bench / "logs") and sorted(p.name for p in bench.iterdir()) == ["logs"]


@pytest.mark.parametrize("kind", ["folder", "pipe"])
def test_a_bench_config_record_that_is_no_file_is_refused_not_taken_as_absent(tmp_path, kind):
    """The twenty-fourth probe: report took a bench.yaml that was a folder or a pipe for no record, and dropped
    its note that some cells of the matrix have no result (exit 0)."""
    import os

    path = tmp_path / layout.CONFIG
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    with pytest.raises(InputError, match="the benchmark config cellprobe writes here cannot be read") as err:
        layout.read_config(tmp_path)
    assert err.value.path == str(path)
    assert layout.read_config(tmp_path / "fresh") is None  # none written yet: no record, no error
