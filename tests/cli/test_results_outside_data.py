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
