"""A run folder's own files are read as strictly as user input: a config.yaml cut or edited is refused, not
completed with today's defaults (the eighth probe: predict ran with built-in untuned thresholds)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from tests.training.tiny import shared_run

from cellprobe.errors import InputError
from cellprobe.run import run_folder as R


@pytest.mark.parametrize("cut", [("selection",), ("encoder", "input_scale"), ("selection", "postprocess", "min_size")])
def test_a_run_config_lacking_keys_is_refused(tmp_path_factory, tmp_path, cut):
    run = shutil.copytree(shared_run(tmp_path_factory), tmp_path / "run")
    data = yaml.safe_load((run / R.CONFIG).read_text())
    section = data
    for key in cut[:-1]:
        section = section[key]
    del section[cut[-1]]
    (run / R.CONFIG).write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(InputError, match="lacks 1 key") as err:
        R.Run.open(run)
    assert err.value.path == str(run / R.CONFIG) and ".".join(cut) in err.value.problem


def test_a_complete_run_config_opens(tmp_path_factory):
    assert R.Run.open(shared_run(tmp_path_factory)).config.epochs == 1


@pytest.mark.parametrize("info", [{}, {"epochs": "1"}, {"epochs": 3}, {"epochs": -1}])
def test_a_finished_status_without_the_finish_record_is_refused(tmp_path_factory, tmp_path, info):
    """The fifteenth probe: run.json of a run killed after its first epoch, its status set to 'finished' by
    hand, passed as finished (train did nothing; predict and evaluate would use it)."""
    import json

    run = shutil.copytree(shared_run(tmp_path_factory), tmp_path / "run")
    stamp = json.loads((run / R.STAMP).read_text())
    assert stamp["status"] == "finished" and stamp["info"]["epochs"] == len(stamp["learning_rates"])
    (run / R.STAMP).write_text(json.dumps({**stamp, "info": info}))
    with pytest.raises(InputError, match="status 'finished' without the record training writes") as err:
        R.Run.open(run)
    assert err.value.path == str(run / R.STAMP)


@pytest.mark.parametrize("change", [
    {"data_sha256": None}, {"started": None}, {"data_sha256": None, "started": None},
    {"data_sha256": "DELETE"}, {"started": "DELETE"}, {"data_sha256": "DELETE", "started": "DELETE"},
    {"learning_rates": "DELETE"}])
def test_a_cleared_or_deleted_record_key_is_refused(tmp_path_factory, tmp_path, change):
    """The seventeenth probe (F10): run.json's data_sha256 set to null, or deleted with started, made a current
    run pass as one from before those keys, whose data and time checks were skipped. Run format 3 writes every
    key from the start: a missing one is damage, and a run that trained records both."""
    import json

    run = shutil.copytree(shared_run(tmp_path_factory), tmp_path / "run")
    stamp = json.loads((run / R.STAMP).read_text())
    assert stamp["started"] and stamp["data_sha256"] and stamp["run_format"] == 3
    stamp.update(change)
    (run / R.STAMP).write_text(json.dumps({k: v for k, v in stamp.items() if v != "DELETE"}))
    with pytest.raises(InputError, match=r"lacks|training records") as err:
        R.Run.open(run)
    assert err.value.path == str(run / R.STAMP)


def test_a_run_that_never_trained_may_lack_both(tmp_path_factory, tmp_path):
    """A run killed before its first checkpoint has no digest and no start yet; it opens (and trains again)."""
    import json

    run = shutil.copytree(shared_run(tmp_path_factory), tmp_path / "run")
    stamp = json.loads((run / R.STAMP).read_text())
    for name in (R.BEST, R.LAST):
        (run / name).unlink()
    (run / R.STAMP).write_text(json.dumps({**stamp, "status": "training", "data_sha256": None, "started": None}))
    assert R.Run.open(run).stamp.started is None


@pytest.mark.parametrize("name", [R.BEST, R.CONFIG])
def test_a_run_file_that_is_a_folder_is_named_as_such(tmp_path_factory, tmp_path, name):
    """The twenty-first probe: best.ckpt a folder was 'the run has not finished an epoch' (it had), config.yaml
    a folder 'not a cellprobe run folder'."""
    run = shutil.copytree(shared_run(tmp_path_factory), tmp_path / "run", ignore=shutil.ignore_patterns("feature*"))
    (run / name).unlink()
    (run / name).mkdir()
    with pytest.raises(InputError, match="is a folder, not a file") as err:
        R.Run.open(run).checkpoint("best")
    assert err.value.path == str(run / name)


@pytest.mark.parametrize(("kind", "problem"), [("folder", "is a folder, not a file"),
                                               ("pipe", "is not a regular file (a device, pipe or socket)"),
                                               ("link to nothing", "is a link to nothing")])
def test_thresholds_that_are_no_file_are_named_for_what_they_are(tmp_path, kind, problem):
    """The twenty-second probe: a postprocess.json that was a pipe was called a folder or a link to nothing."""
    import os

    path = tmp_path / R.POSTPROCESS
    {"folder": path.mkdir, "pipe": lambda: os.mkfifo(path),
     "link to nothing": lambda: path.symlink_to(tmp_path / "gone")}[kind]()
    with pytest.raises(InputError) as err:
        R.load_postprocess(tmp_path)
    assert err.value.path == str(path) and err.value.problem.startswith(f"{problem}: the run's tuned thresholds")
