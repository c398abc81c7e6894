"""`cellprobe tune`: postprocess.json from the run's validation patches; a missing run → exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.training.tiny import shared_run

from cellprobe.postprocess import PostprocessParams


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


def test_tune_writes_postprocess_json(cli, run):
    rc, out, err = cli("tune", run, "--device", "cpu")
    assert rc == 0, err
    params = PostprocessParams.model_validate_json((run / "postprocess.json").read_text())
    assert "postprocess.json" in out and params.min_size in (3, 10, 30)


def test_tuning_again_needs_overwrite_and_starts_from_the_untuned_thresholds(cli, run, tmp_path):
    """Thresholds already there are kept without --overwrite; a retune ignores them (reproducible)."""
    import pandas as pd

    from cellprobe.run import run_folder as R

    grid = tmp_path / "grid.yaml"
    grid.write_text("fg_threshold: [0.3, 0.5]\nmin_size: [3, 10]\n")
    rc, _, err = cli("tune", run, "--device", "cpu", "--grid", grid, "--overwrite")
    assert rc == 0, err
    first, first_table = (run / R.POSTPROCESS).read_text(), pd.read_csv(run / "tune.csv")
    stored = PostprocessParams(fg_threshold=0.9, min_size=100, body_threshold=0.8).model_dump_json()
    (run / R.POSTPROCESS).write_text(stored)

    rc, _, err = cli("tune", run, "--device", "cpu", "--grid", grid)
    assert rc == 2 and str(run / R.POSTPROCESS) in err and "--overwrite" in err, err
    assert (run / R.POSTPROCESS).read_text() == stored  # kept

    rc, _, err = cli("tune", run, "--device", "cpu", "--grid", grid, "--overwrite")
    assert rc == 0, err
    assert (run / R.POSTPROCESS).read_text() == first
    pd.testing.assert_frame_equal(pd.read_csv(run / "tune.csv"), first_table)
    # parameters outside the grid keep the run's untuned values, not those of the file it replaced
    assert PostprocessParams.model_validate_json(first).body_threshold == PostprocessParams().body_threshold
    # the fourteenth probe: a second tune of the run, started while the first ran, replaced its results
    from cellprobe.locking import exclusive

    with exclusive(run, "tuning"):  # as another process holding the run
        rc, _, err = cli("tune", run, "--device", "cpu", "--grid", grid, "--overwrite")
    assert rc == 2 and "in use by another cellprobe process (tuning)" in err and err.count("\n") == 1, err
    assert (run / R.POSTPROCESS).read_text() == first
    # the seventeenth probe: the refusal named what the refused command does, not what the holder does
    with exclusive(run, "training"):
        rc, _, err = cli("tune", run, "--device", "cpu", "--grid", grid, "--overwrite")
    assert rc == 2 and "in use by another cellprobe process (training)" in err, err


def test_missing_run(cli, tmp_path):
    rc, _, err = cli("tune", tmp_path / "nope")
    assert rc == 2 and "does not exist" in err


def test_tune_with_a_grid_file(cli, run, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("contour_weight: [0.0, 2.0]\nmin_marker_size: [3, 12]\n")
    rc, _, err = cli("tune", run, "--device", "cpu", "--grid", grid, "--search", "grid", "--overwrite")
    assert rc == 0, err
    import pandas as pd

    table = pd.read_csv(run / "tune.csv")
    assert len(table) == 4 and set(table["contour_weight"]) == {0.0, 2.0}
    assert set(table["min_marker_size"]) == {3, 12}


@pytest.mark.parametrize("text, problem", [("contour_wieght: [1.0]\n", "unknown parameter 'contour_wieght'"),
                                           ("min_size: 10\n", "non-empty list"),
                                           ("body_threshold: [0.5, 1.5]\n", "invalid setting"),
                                           # the 28th probe: float32 overflow, NaN relief, tuned and scored
                                           ("contour_weight: [1.0, 1.0e+300]\n", "less than or equal to 1000"),
                                           ("- 1\n", "must be a mapping")])
def test_bad_grid_file(cli, run, tmp_path, text, problem):
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    rc, _, err = cli("tune", run, "--device", "cpu", "--grid", grid)
    assert rc == 2 and str(grid) in err and problem in err, err
    assert "Traceback" not in err


def test_shipped_grids_load():
    from pathlib import Path

    from cellprobe.evaluation.tune import load_grid

    files = sorted((Path(__file__).parents[2] / "configs" / "tune").glob("*.yaml"))
    assert files
    for path in files:
        assert set(load_grid(path)) <= set(PostprocessParams.model_fields), path


WIDE = str(Path(__file__).parents[2] / "configs" / "tune" / "watershed_wide.yaml")


@pytest.mark.parametrize("args, problem", [
    (("--metric", "pqq"), "cellprobe: error: --metric: unknown metric 'pqq'"),
    (("--search", "random"), "cellprobe: error: --search: unknown search 'random'"),
    (("--search", "grid", "--grid", WIDE), f"cellprobe: error: {WIDE}: tune grid: "),  # too many combinations
])
def test_search_settings_are_checked_before_the_network_runs(cli, run, monkeypatch, args, problem):
    import cellprobe.evaluation.eval_data as eval_data

    def never(*_args, **_kwargs):
        raise AssertionError("the network ran before the settings were checked")

    monkeypatch.setattr(eval_data, "iter_predictions", never)
    rc, _, err = cli("tune", run, "--device", "cpu", *args)
    assert rc == 2 and problem in err and len(err.strip().splitlines()) == 1, err
