"""Results never go into the dataset folder a command reads (a sibling of the thirteenth probe's finding:
`score --format pannuke --json true/masks.npy --overwrite` replaced the truth): `data check --json`, a train
run or its feature cache, `evaluate --out` and a bench folder inside the data are refused before any work,
naming the output, and the dataset's files are left as they were."""

from __future__ import annotations

import pytest
from tests.training.tiny import make_tiny_data, shared_run

BENCH = """
name: tiny
datasets:
  - name: ds
    path: {data}
    folds: [{{train_split: train, test_split: test}}]
encoders:
  - {{name: efficientnet-lite0, weights: [random]}}
seeds: [0]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


def _files(folder):
    """Every file and folder below ``folder``, files with their bytes."""
    return {p: p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def _refused(result, out, data):
    rc, _, err = result
    assert rc == 2 and str(out) in err and f"the dataset folder {data}, which the command reads" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_no_command_writes_its_results_into_the_data_it_reads(cli, run, tmp_path):
    data = make_tiny_data(tmp_path / "data")
    before = _files(data)
    train = ("train", "--encoder", "efficientnet-lite0", "--weights", "random", "--data", data, "--format",
             "patches", "--set", "epochs=1")
    for out in (data, data / "run", data / "train" / "run"):
        _refused(cli(*train, "--out", out), out, data)
    _refused(cli(*train, "--out", tmp_path / "run", "--set", f"cache_dir={data / 'cache'}"), data / "cache", data)
    assert not (tmp_path / "run").exists()
    for out in (data, data / "test"):
        _refused(cli("evaluate", run, "--data", data, "--split", "test", "--out", out), out, data)
    (tmp_path / "b.yaml").write_text(BENCH.format(data=data))
    _refused(cli("bench", tmp_path / "b.yaml", "--out", data / "bench", "--no-report"), data / "bench", data)
    _refused(cli("data", "check", data, "--json", data / "train" / "patch_info.csv", "--overwrite"),
             data / "train" / "patch_info.csv", data)
    assert _files(data) == before


def test_predictions_go_neither_into_the_runs_training_data_nor_into_a_run_folder(cli, run, tmp_path):
    """Twenty-sixth probe: predict and slide wrote their results into the run's own training data (its split
    folder, its images folder), into the run folder and its feature cache; evaluate --out into the training data
    of the run (another dataset scored) likewise."""
    import numpy as np
    from PIL import Image
    from tests.training.tiny import shared_data

    trained_on = shared_data()
    before, run_before = _files(trained_on), _files(run)
    image = tmp_path / "img.png"
    Image.fromarray(np.full((300, 300, 3), 200, np.uint8)).save(image)
    for out in (trained_on, trained_on / "train", trained_on / "train" / "images"):
        _refused(cli("predict", run, image, "--out", out), out, trained_on)
        _refused(cli("slide", run, image, "--out", out, "--mpp", "0.25"), out, trained_on)
    other = make_tiny_data(tmp_path / "other")
    _refused(cli("evaluate", run, "--data", other, "--split", "test", "--out", trained_on / "test"),
             trained_on / "test", trained_on)
    for out, where in ((run, "is the run folder"), (run / "feature_cache", "is inside the run folder"),
                       (run / "predictions", "is inside the run folder")):
        for command in (("predict", run, image), ("slide", run, image, "--mpp", "0.25")):
            rc, _, err = cli(*command, "--out", out)
            assert rc == 2 and f"{where} {run}, where the run keeps its own files" in err, err
    assert _files(trained_on) == before and _files(run) == run_before
    assert not (run / "predictions").exists()
