"""Benchmark cells as tasks of a real Dask LocalCluster (2 worker processes, loopback): the same index.csv as
the in-process run, a feature cache shared by two cells built once, a worker killed mid-cell costs only that
cell, which finishes exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from tests.bench.dask_helpers import CountChunkWrites, SlowCell
from tests.training.tiny import TINY_DECODER

from cellprobe.bench import layout
from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.runner import run_bench
from cellprobe.cluster import CLIENT_SETTINGS, ClusterSpec
from cellprobe.config import parse_config

#: the demo's CoNSeP patches (shipped with cellprobe); a few of each split, cropped, make the tests' dataset
DEMO = Path(__file__).parents[2] / "src" / "cellprobe" / "resources" / "demo"
SPLITS = {"train": 4, "val": 2, "test": 2}
CROP = 64
#: columns of index.csv that a distributed run may change: timings and the host that ran each cell
RUN_COLUMNS = ("seconds", "host")


def _consep_patches(root: Path) -> Path:
    """A few real CoNSeP patches (the demo's), cropped to CROP² pixels: train, val and test splits."""
    import numpy as np

    from cellprobe.data import open_dataset
    from cellprobe.data.fixtures import write_patches

    for split, count in SPLITS.items():
        data = open_dataset(DEMO, format="patches", split=split)
        samples = [data[i] for i in range(count)]
        write_patches(root / split, np.stack([s.image[:CROP, :CROP] for s in samples]),
                      np.stack([s.inst[:CROP, :CROP] for s in samples]), np.stack([s.cls[:CROP, :CROP] for s in samples]),
                      [s.meta.name for s in samples], [s.meta.source for s in samples])
    shutil.copy(DEMO / "dataset.yaml", root / "dataset.yaml")
    return root


def _config(data: Path) -> BenchConfig:
    """4 cells: EfficientNet-Lite0 pretrained (seeds 0 and 1 share one feature cache) and random (a cache per
    seed), 1 epoch; one torch thread, as each local worker of a 2-core machine gets."""
    return parse_config(BenchConfig, {
        "name": "dask",
        "datasets": [{"name": "consep", "path": str(data), "format": "patches",
                      "folds": [{"train_split": "train", "val_split": "val", "test_split": "test"}]}],
        "encoders": [{"name": "efficientnet-lite0", "weights": ["pretrained", "random"], "group": "general"}],
        "seeds": [0, 1], "examples": 1, "tune": False,
        "training": {"epochs": 1, "batch_size": 4, "cache_features": True, "cache_views": 1,
                     "decoder": dict(TINY_DECODER),
                     "trainer": {"accelerator": "cpu", "progress": False, "threads": 1}}})


@pytest.fixture(scope="module")
def benches(tmp_path_factory):
    """The same 4-cell benchmark run in-process and as tasks of a LocalCluster of 2 worker processes (its
    workers log every feature-cache chunk they write)."""
    import dask
    from distributed import Client, LocalCluster

    root = tmp_path_factory.mktemp("dispatch")
    config = _config(_consep_patches(root / "data"))
    sequential = run_bench(config, root / "sequential")
    assert not sequential.failed, sequential.failed
    log = root / "chunk-writes.log"
    plugin = CountChunkWrites(str(log))
    with dask.config.set(CLIENT_SETTINGS), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=":0", silence_logs=40) as cluster, Client(cluster) as client:
        client.register_plugin(plugin)
        lines: list[str] = []
        distributed = run_bench(config, root / "dask", cluster=ClusterSpec("scheduler", address=cluster.scheduler_address),
                                notify=lines.append)
    return root, sequential, distributed, lines


def _index(bench_dir: Path) -> pd.DataFrame:
    index = pd.read_csv(bench_dir / layout.INDEX)
    return index.drop(columns=[c for c in index.columns if c.startswith(RUN_COLUMNS)])


def test_cells_on_a_cluster_give_the_sequential_index(benches):
    root, sequential, distributed, lines = benches
    assert not distributed.failed and sorted(distributed.done) == sorted(sequential.done) and len(sequential.done) == 4
    assert "host" in pd.read_csv(root / "dask" / layout.INDEX).columns
    pd.testing.assert_frame_equal(_index(root / "dask"), _index(root / "sequential"))
    assert len(lines) == 1 and "4 cell(s) to run" in lines[0] and "dashboard" in lines[0]


def test_two_cells_sharing_a_feature_cache_build_it_once(benches):
    root = benches[0]
    writes = [line.split("\t") for line in (root / "chunk-writes.log").read_text().splitlines()]
    chunks = [(folder, chunk) for folder, chunk, _pid in writes]
    assert len(chunks) == len(set(chunks))  # no chunk written twice, by one worker or two
    caches = {Path(folder).relative_to(root / "dask" / "feature_cache").parts[0] for folder, _ in chunks}
    # the pretrained cache (seeds 0 and 1) and one per random seed: 3 caches (train and val folders each)
    assert len(caches) == 3 and sum("pretrained" in c for c in caches) == 1


def test_a_second_run_skips_every_finished_cell(benches):
    root = benches[0]
    summary = run_bench(_config(root / "data"), root / "dask", cluster=ClusterSpec("local", workers=1))
    assert summary.done == [] and len(summary.skipped) == 4


# ---------------------------------------------------------------------------------------------------- worker death
FAKE = {"name": "t", "datasets": [{"name": "ds", "path": "/data/ds", "folds": [{"train_split": "a", "test_split": "b"}]}],
        "encoders": [{"name": "lite0", "weights": ["pretrained", "random"], "group": "general"}], "seeds": [0, 1]}
#: how long a fake cell takes, and how long the test waits for the first one to start
CELL_SECONDS = 4.0
START_WAIT_S = 60.0


def test_a_worker_killed_mid_cell_costs_only_that_cell(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    killed: list[str] = []

    def kill_first() -> None:
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            started = sorted(marks.glob("start-*"))
            if started:
                time.sleep(CELL_SECONDS / 4)  # mid-cell
                os.kill(int(started[0].read_text()), signal.SIGKILL)
                killed.append(started[0].name)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first)
    killer.start()
    summary = run_bench(parse_config(BenchConfig, FAKE), tmp_path / "b", SlowCell(marks, CELL_SECONDS),
                        cluster=ClusterSpec("local", workers=2))
    killer.join()
    assert killed, "no cell started"
    cells = [f"{t}" for t in summary.done]
    assert not summary.failed and len(cells) == 4 and len(set(cells)) == 4
    finished = [p.name.split("-")[1] for p in marks.glob("finish-*")]
    assert sorted(finished) == sorted(cells)  # every cell finished once, the killed one included
    killed_cell = killed[0].split("-")[1]
    assert len(list(marks.glob(f"start-{killed_cell}-*"))) == 2  # started again on a live worker
    for cid in cells:
        assert json.loads((tmp_path / "b" / "cells" / cid / layout.RESULT).read_text())["cell_id"] == cid
    assert len(pd.read_csv(tmp_path / "b" / layout.INDEX)) == 4
    assert (tmp_path / "b" / "logs" / "dask.log").is_file()


CLI_BENCH = """
name: cli
datasets:
  - name: consep
    path: {data}
    format: patches
    folds: [{{train_split: train, val_split: val, test_split: test}}]
encoders:
  - {{name: efficientnet-lite0, weights: [random], group: general}}
seeds: [0, 1]
examples: 0
tune: false
training: {{epochs: 1, batch_size: 4, cache_views: 1, decoder: {decoder},
           trainer: {{accelerator: cpu, progress: true, threads: 1}}}}
"""


def test_the_command_shows_cellprobe_lines_only(benches, tmp_path, capfd):
    """`cellprobe bench --cluster local:2`: the cluster line, the cells' bar and the summary on the terminal;
    what Dask and the workers print (progress bars of training included) goes to the log folder."""
    from cellprobe.cli.app import main

    config = tmp_path / "b.yaml"
    config.write_text(CLI_BENCH.format(data=benches[0] / "data", decoder=json.dumps(TINY_DECODER)))
    capfd.readouterr()
    rc = main(["bench", str(config), "--out", str(tmp_path / "out"), "--no-report", "--cluster", "local:2"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert "a local Dask cluster of 2 worker process(es): 2 worker(s) now, 2 cell(s) to run" in err
    assert "2 cell(s) run, 0 already done, 0 failed" in err and "done 2 · running 0 · failed 0" in err
    for noise in ("distributed.", "Epoch", "GPU available", "Traceback"):
        assert noise not in out + err
    assert "Epoch" in "".join(p.read_text() for p in (tmp_path / "out" / "logs").glob("worker-*.log"))
