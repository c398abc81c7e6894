"""A real benchmark cell on tiny data: train, tune on the validation patches, evaluate on test, examples."""

from __future__ import annotations

import json

import pytest
from tests.training.tiny import TINY_DECODER, make_tiny_data

from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.cell import run_cell
from cellprobe.bench.matrix import expand
from cellprobe.run import run_folder as R


def _config(data, **changes) -> BenchConfig:
    return BenchConfig.model_validate({
        "datasets": [{"name": "tiny", "path": str(data), "format": "patches",
                      "folds": [{"train_split": "train", "val_split": None, "test_split": "test"}]}],
        "encoders": [{"name": "efficientnet-lite0", "weights": ["random"]}],
        "training": {"epochs": 1, "batch_size": 4, "cache_views": 1, "decoder": dict(TINY_DECODER),
                     "data": {"val_fraction": 0.25}, "trainer": {"accelerator": "cpu", "progress": False}},
        "examples": 2, **changes})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("cell-data"))


def test_a_cell_tunes_on_validation_then_scores_the_test_split(data, tmp_path):
    task = next(expand(_config(data, tta=2)))
    out = run_cell(task, tmp_path)
    run_dir = tmp_path / out.info["run_dir"]
    tuned = json.loads((run_dir / R.POSTPROCESS).read_text())  # written by the tuning step
    assert (run_dir / "tune.csv").is_file() and set(tuned) >= {"fg_threshold", "contour_step"}
    assert out.info["n_test_images"] == 4 and len(out.per_image) == 4 and out.info["seconds_tune"] > 0
    assert 0.0 <= out.summary["pq"] <= 1.0
    assert out.examples["pred_inst"].shape == (2, 64, 64)
    metrics = json.loads((run_dir / R.METRICS).read_text())
    assert metrics["evaluation"]["tta_views"] == 2 and metrics["evaluation"]["postprocess"] == tuned


def test_tuning_can_be_switched_off(data, tmp_path):
    out = run_cell(next(expand(_config(data, tune=False))), tmp_path)
    assert not (tmp_path / out.info["run_dir"] / R.POSTPROCESS).exists()


def test_a_cell_is_also_scored_on_its_test_only_datasets(data, tmp_path):
    config = _config(data, tune=False, examples=0,
                     test_datasets=[{"name": "again", "path": str(data), "format": "patches", "split": "test"}])
    task = next(expand(config))
    out = run_cell(task, tmp_path)
    other = out.test_only["again"]
    assert other.info["n_test_images"] == 4 and other.info["scoring"] == "per class"
    # the same images scored twice give the same numbers: the test-only path is the in-domain one
    assert other.summary["pq"] == pytest.approx(out.summary["pq"])
    assert (tmp_path / "test_only" / "again" / R.METRICS).is_file()


def test_a_missing_test_only_dataset_is_refused_before_anything_is_written(data, tmp_path):
    from cellprobe.bench.runner import run_bench
    from cellprobe.errors import InputError

    config = _config(data, test_datasets=[{"name": "gone", "path": str(tmp_path / "gone"), "format": "patches"}])
    with pytest.raises(InputError, match="test_datasets 'gone', split 'test'"):
        run_bench(config, tmp_path / "bench")
    assert not (tmp_path / "bench").exists()


def test_a_finished_cells_run_changed_by_hand_is_refused_by_bench_and_report(data, tmp_path):
    """The sixteenth probe: a finished cell's run re-tuned by hand kept its old scores in the report and was
    skipped as done by the next bench run. Its result records the network and thresholds it was scored with."""
    from cellprobe.bench import layout
    from cellprobe.bench.report import ReportOptions, build_report
    from cellprobe.bench.runner import run_bench
    from cellprobe.errors import InputError
    from cellprobe.postprocess import PostprocessParams

    config = _config(data, examples=0)
    run_bench(config, tmp_path / "bench")
    cell = layout.cell_dir(tmp_path / "bench", next(expand(config)).cell)
    thresholds = cell / "run" / R.POSTPROCESS
    kept = thresholds.read_text()
    thresholds.write_text(PostprocessParams(fg_threshold=0.123).model_dump_json())
    for command in (lambda: run_bench(config, tmp_path / "bench"),
                    lambda: build_report(tmp_path / "bench", options=ReportOptions(n_boot=20, n_perm=20))):
        with pytest.raises(InputError, match="changed since the cell was scored") as err:
            command()
        assert err.value.path == str(thresholds)
    thresholds.write_text(kept)
    assert run_bench(config, tmp_path / "bench").skipped
    # the seventeenth probe: run_files set to null hid a re-tuned run from the report
    result = cell / layout.RESULT
    kept_result = result.read_text()
    result.write_text(json.dumps({**json.loads(kept_result), "run_files": None}))
    with pytest.raises(InputError, match="run_files None is not the record cellprobe writes"):
        build_report(tmp_path / "bench", options=ReportOptions(n_boot=20, n_perm=20), overwrite=True)
    # ... and so did deleting it (F12: taken for a result from before the record, not checked)
    result.write_text(json.dumps({k: v for k, v in json.loads(kept_result).items() if k != "run_files"}))
    for command in (lambda: run_bench(config, tmp_path / "bench"),
                    lambda: build_report(tmp_path / "bench", options=ReportOptions(n_boot=20, n_perm=20),
                                         overwrite=True)):
        with pytest.raises(InputError, match="run_files None is not the record cellprobe writes") as err:
            command()
        assert err.value.path == str(result)
    result.write_text(kept_result)


def test_a_cells_run_upgraded_from_format_2_is_still_the_cells(data, tmp_path):
    """The nineteenth probe: upgrading the runs of a finished format-2 benchmark rewrote their best.ckpt, and
    the next bench run refused every cell as 're-tuned or retrained by hand'. run.json records what its
    upgrade rewrote; a checkpoint changed otherwise is still refused."""
    from tests.run.earlier_formats import to_format_2

    from cellprobe.bench import layout
    from cellprobe.bench.report import ReportOptions, build_report
    from cellprobe.bench.runner import run_bench
    from cellprobe.errors import InputError
    from cellprobe.hashing import file_sha256
    from cellprobe.run.upgrade import upgrade_run
    from cellprobe.training.build import training_data_facts

    config = _config(data, examples=0)
    run_bench(config, tmp_path / "bench")
    cell = layout.cell_dir(tmp_path / "bench", next(expand(config)).cell)
    run, result = cell / layout.CELL_RUN, cell / layout.RESULT
    to_format_2(run, kept=("data_sha256", "started"))  # as a format-2 benchmark left it
    record = json.loads(result.read_text())
    record["run_files"]["best.ckpt"] = file_sha256(run / R.BEST)
    result.write_text(json.dumps(record))
    upgrade_run(run, training_data_facts)
    assert run_bench(config, tmp_path / "bench").skipped
    build_report(tmp_path / "bench", options=ReportOptions(n_boot=20))
    stamp = (run / R.STAMP).read_text()
    (run / R.STAMP).write_text(stamp[:40])  # the twentieth probe: best.ckpt was blamed for a damaged run.json
    with pytest.raises(InputError) as err:
        run_bench(config, tmp_path / "bench")
    assert err.value.path == str(run / R.STAMP)
    (run / R.STAMP).write_text(stamp)
    (run / R.BEST).write_bytes((run / R.BEST).read_bytes() + b"\0")
    with pytest.raises(InputError, match="changed since the cell was scored"):
        run_bench(config, tmp_path / "bench")
