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


def test_a_cleared_data_digest_is_refused(tmp_path_factory, tmp_path):
    """The seventeenth probe: run.json's data_sha256 set to null turned off tune's (and refit's, and a resume's)
    check that the data is the run's. A run that records its start has recorded its data's digest with it."""
    import json

    run = shutil.copytree(shared_run(tmp_path_factory), tmp_path / "run")
    stamp = json.loads((run / R.STAMP).read_text())
    assert stamp["started"] and stamp["data_sha256"]
    (run / R.STAMP).write_text(json.dumps({**stamp, "data_sha256": None}))
    with pytest.raises(InputError, match="data_sha256 is missing though training's start is recorded"):
        R.Run.open(run)

