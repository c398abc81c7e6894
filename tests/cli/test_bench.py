"""`cellprobe bench`: config → matrix → index, resumable, bad input in one line (cell function faked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

_SPEC = importlib.util.spec_from_file_location("cellprobe_test_synth", Path(__file__).parents[1] / "bench" / "synth.py")
synth = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(synth)

CONFIG = """
name: tiny
datasets:
  - name: ds
    path: data/ds
    folds: [{train_split: train, test_split: test}]
encoders:
  - {name: efficientnet-lite0, weights: [pretrained, random], group: general}
seeds: [0, 1]
"""


@pytest.fixture
def fake_cells(monkeypatch):
    calls = []

    def fake(task, work_dir):
        calls.append(task)
        quality = 0.9 if task.cell.weights == "pretrained" else 0.6
        return synth.fake_cell_output(task.cell.dataset, task.cell.model, task.cell.seed, quality)

    # the runner holds its own reference to the default cell function: patched first, so that importing the
    # runner here binds the real one, which the undo then puts back
    monkeypatch.setattr("cellprobe.bench.runner.run_cell", fake)
    monkeypatch.setattr("cellprobe.bench.cell.run_cell", fake)
    return calls


def test_bench_runs_the_matrix_then_skips_finished_cells(cli, tmp_path, fake_cells):
    from tests.training.tiny import make_tiny_data

    make_tiny_data(tmp_path / "data" / "ds")  # the splits are opened before any cell runs
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG)
    rc, _, err = cli("bench", cfg, "--out", tmp_path / "out", "--no-report")
    assert rc == 0, err
    assert "4 cell(s) run, 0 already done, 0 failed" in err
    assert len(pd.read_csv(tmp_path / "out" / "index.csv")) == 4
    assert fake_cells[0].dataset.path == (tmp_path / "data" / "ds").resolve()  # relative to the config file
    rc, _out, err = cli("bench", cfg, "--out", tmp_path / "out", "--no-report", "--set", "seeds=[0,1,2]")
    assert rc == 0 and "2 cell(s) run, 4 already done" in err
    # a report.md in the bench folder that is not its report (a user's notes) is refused before any cell,
    # not replaced at the end; the bench's own report is rewritten on the next run
    (tmp_path / "out" / "report.md").write_text("my notes\n")
    rc, _, err = cli("bench", cfg, "--out", tmp_path / "out", "--set", "seeds=[0,1,2,3]")
    assert rc == 2 and "report.md" in err and "is not a report of this benchmark" in err, err
    assert err.count("\n") == 1 and len(fake_cells) == 6 and (tmp_path / "out" / "report.md").read_text() == "my notes\n"
    (tmp_path / "out" / "report.md").unlink()
    for _ in range(2):
        rc, _, err = cli("bench", cfg, "--out", tmp_path / "out", "--set", "seeds=[0,1,2]")
        assert rc == 0 and (tmp_path / "out" / "report.md").is_file(), err
    # the fifteenth probe: --out silently beat --set output, and bench.yaml recorded the --set's folder
    import yaml

    rc, _, err = cli("bench", cfg, "--out", tmp_path / "out", "--set", f"output={tmp_path / 'elsewhere'}")
    assert rc == 2 and "--set output conflicts with --out for 'output'" in err and err.count("\n") == 1, err
    assert yaml.safe_load((tmp_path / "out" / "bench.yaml").read_text())["output"] == str(tmp_path / "out")


def test_bench_bad_config_is_one_line_and_exit_2(cli, tmp_path, fake_cells):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG + "epochs: 3\n")
    rc, _, err = cli("bench", cfg, "--out", tmp_path / "out")
    assert rc == 2 and err.count("\n") == 1 and "b.yaml" in err and "epochs" in err
    rc, _out, err = cli("bench", tmp_path / "missing.yaml")
    assert rc == 2 and "missing.yaml" in err and not fake_cells


def test_a_config_refused_by_the_runner_checks_prints_one_line_and_no_bar(cli, tmp_path):
    """The checks run_bench makes before any cell (here: a missing dataset) come before the cells' bar."""
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG + "test_datasets: [{name: other, path: data/other}]\n")
    rc, _, err = cli("bench", cfg, "--out", tmp_path / "out")
    assert rc == 2 and err.count("\n") == 1 and err.startswith("cellprobe: error:"), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, sets, where, key", [
    ("", ["--set", "encoders=[{name: no-such-encoder}]"], "--set encoders", "encoders.0.name"),
    ("training: {trainer: {accelerator: cpu, devices: 4096}}\n", [], "b.yaml", "training.trainer.devices"),
    ("", ["--set", "training.trainer.num_workers=100000"], "--set training.trainer.num_workers",
     "training.trainer.num_workers"),
])
def test_what_the_cells_would_meet_is_refused_first_naming_where_it_was_given(cli, tmp_path, fake_cells, extra,
                                                                            sets, where, key):
    """An unknown encoder, or more devices or data workers than this machine has, are refused before the
    benchmark folder is made, naming the bench file or the --set that gave the key."""
    cfg = tmp_path / "b.yaml"
    cfg.write_text(CONFIG + extra)
    rc, _, err = cli("bench", cfg, "--out", tmp_path / "out", *sets)
    where = str(cfg) if where == "b.yaml" else where
    assert rc == 2 and err.count("\n") == 1 and f"error: {where}: " in err and f"'{key}'" in err, err
    assert not (tmp_path / "out").exists() and not fake_cells
