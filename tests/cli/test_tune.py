"""`cellprobe tune`: postprocess.json from the run's validation patches; a missing run → exit 2."""

from __future__ import annotations

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


def test_missing_run(cli, tmp_path):
    rc, _, err = cli("tune", tmp_path / "nope")
    assert rc == 2 and "does not exist" in err
