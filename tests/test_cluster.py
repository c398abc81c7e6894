"""Scale-out plumbing (cellprobe.cluster): cluster options, bad ones refused in one line within seconds, the SLURM
job script dask-jobqueue generates from a cluster YAML (no SLURM needed), the shared-folder check against real
worker processes, events and the per-worker cache."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.bench.dask_helpers import WorkerSeesAnotherFolder

from cellprobe import cluster
from cellprobe.cluster import ClusterSpec, SlurmClusterConfig, parse_cluster_spec
from cellprobe.errors import InputError

EXAMPLE = Path(__file__).parents[1] / "configs" / "cluster" / "slurm.yaml"
#: a refused cluster option answers within this many seconds
QUICK_S = 8.0

SLURM_YAML = """
partition: gpu-long
account: histo-lab
gpus_per_job: 1
cores: 6
memory: 48GB
walltime: "02:30:00"
adaptive: {minimum: 1, maximum: 9}
job_extra_directives: ["--qos=high", "--constraint=a100"]
job_script_prologue: ["module load cuda/12.4"]
"""

BENCH = """
name: tiny
datasets:
  - name: ds
    path: data
    folds: [{train_split: train, test_split: test}]
encoders:
  - {name: efficientnet-lite0, weights: [random]}
"""


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sbatch_on_path(tmp_path, monkeypatch):
    """A stand-in `sbatch` on PATH: what `--cluster slurm` checks for before starting (nothing is submitted)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_cluster_options_parse(sbatch_on_path):
    assert parse_cluster_spec(None, None, None) is None
    cores = os.cpu_count()
    assert parse_cluster_spec(f"local:{cores}", None, None) == ClusterSpec("local", workers=cores)
    spec = parse_cluster_spec("slurm", EXAMPLE, None)
    assert spec.kind == "slurm" and spec.slurm.jobs == 4 and spec.slurm.partition == "gpu"


def test_more_local_workers_than_cores_and_slurm_without_sbatch_are_refused(monkeypatch, tmp_path):
    with pytest.raises(InputError, match=r"give at most local:\d+"):
        parse_cluster_spec(f"local:{10 * (os.cpu_count() or 1) + 8}", None, None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch: dask-jobqueue would retry for ever
    with pytest.raises(InputError, match="no 'sbatch' on this machine's PATH"):
        parse_cluster_spec("slurm", EXAMPLE, None)


def test_a_running_scheduler_is_used_by_address():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        assert parse_cluster_spec(None, None, address) == ClusterSpec("scheduler", address=address)


@pytest.mark.parametrize(("cluster_opt", "config", "scheduler", "says"), [
    ("local:0", None, None, "at least 1 worker"),
    ("local:two", None, None, "unknown cluster"),
    ("local:\u0661", None, None, "unknown cluster"), ("local:01", None, None, "unknown cluster"),
    ("kubernetes", None, None, "unknown cluster"),
    ("slurm", None, None, "needs --cluster-config"),
    ("slurm", "missing.yaml", None, "cannot read config"),
    ("local:2", "c.yaml", None, "only goes with --cluster slurm"),
    ("local:2", None, "tcp://127.0.0.1:1", "not both"),
    (None, None, "localhost:8786", "not a scheduler address"),
    (None, None, "tcp://[::1", "not a scheduler address"),  # the 27th probe: urlsplit's ValueError, a traceback
    (None, None, "tcp://[zz]:8786", "not a scheduler address"),
    (None, None, "tcp://127.0.0.1:CLOSED", "no Dask scheduler reachable"),
])
def test_bad_cluster_options_are_one_line_exit_2_within_seconds(cli, tmp_path, cluster_opt, config, scheduler, says):
    (tmp_path / "b.yaml").write_text(BENCH)
    args = ["bench", tmp_path / "b.yaml", "--out", tmp_path / "out"]
    if cluster_opt:
        args += ["--cluster", cluster_opt]
    if config:
        args += ["--cluster-config", tmp_path / config]
    if scheduler:
        args += ["--scheduler", scheduler.replace("CLOSED", str(_closed_port()))]
    start = time.monotonic()
    rc, _out, err = cli(*args)
    assert rc == 2 and err.count("\n") == 1 and says in err, err
    assert time.monotonic() - start < QUICK_S
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("yaml_text", "says"), [
    ("partition: gpu\n", "either 'jobs'"),
    ("jobs: 2\nadaptive: {maximum: 3}\n", "either 'jobs'"),
    ("adaptive: {minimum: 4, maximum: 3}\n", "above maximum"),
    ("jobs: 2\ngpus_per_job: 2\n", "gpus_per_job"),
    ("jobs: 2\nwalltime: 8h\n", "walltime"),
    ("jobs: 2\nqueue: gpu\n", "queue"),
    ("jobs: 99999999\n", "jobs"),
    ("jobs: 1\nworker_wait_minutes: 1.0e+300\n", "worker_wait_minutes"),  # the 28th probe's class: overflow
    ("jobs: 1\ncores: 1000000000\n", "cores"),
    # the tenth probe: these reached sbatch (a newline in a directive starts a shell line of the job script)
    ("jobs: 1\nwalltime: '\u0668:00:00'\n", "walltime"), ("jobs: 1\nwalltime: '8:61:00'\n", "walltime"),
    ("jobs: 1\nmemory: '\u0668GB'\n", "memory"), ("jobs: 1\nmemory: \"8\u00a0GB\"\n", "memory"),
    ("jobs: 1\njob_extra_directives: [\"--qos=normal\\nrm -rf ~\"]\n", "job_extra_directives.0"),
    ("jobs: 1\njob_script_prologue: [\"module load x\\rboom\"]\n", "job_script_prologue.0"),
    ("jobs: 1\npartition: gpu long\n", "partition"), ("jobs: 1\naccount: \"lab\\n\"\n", "account"),
])
def test_bad_cluster_yaml_names_the_file_and_key(tmp_path, yaml_text, says):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(InputError, match=says) as err:
        parse_cluster_spec("slurm", path, None)
    assert err.value.path == str(path)


def test_the_slurm_job_script_carries_the_cluster_yaml(tmp_path, sbatch_on_path):
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue import SLURMCluster

    path = tmp_path / "c.yaml"
    path.write_text(SLURM_YAML)
    config = parse_cluster_spec("slurm", path, None).slurm
    with SLURMCluster(**cluster.slurm_cluster_kwargs(config), scheduler_options={"dashboard_address": ":0"}) as slurm:
        script = slurm.job_script()
    lines = script.splitlines()
    for directive in ("#SBATCH -p gpu-long", "#SBATCH -A histo-lab", "#SBATCH --gpus=1", "#SBATCH -t 02:30:00",
                      "#SBATCH --cpus-per-task=6", "#SBATCH --qos=high", "#SBATCH --constraint=a100"):
        assert directive in lines, script
    assert "module load cuda/12.4" in lines and "export DASK_DISTRIBUTED__WORKER__DAEMON=False" in lines
    worker = next(line for line in lines if "dask_worker" in line)
    assert worker.endswith("--nthreads 1 --resources GPU=1")  # one cell at a time, on the job's GPU


def test_cpu_slurm_workers_ask_for_no_gpu():
    kwargs = cluster.slurm_cluster_kwargs(SlurmClusterConfig(jobs=2, gpus_per_job=0))
    assert not any("gpus" in d for d in kwargs["job_extra_directives"])
    assert "--resources" not in kwargs["worker_extra_args"]


@pytest.fixture(scope="module")
def two_workers():
    """A real LocalCluster of 2 worker processes (loopback) and a client on it."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                      silence_logs=40) as local, Client(local) as client:
        yield client


def test_workers_that_share_the_folder_pass_the_check(two_workers, tmp_path):
    cluster.check_shared_folder(two_workers, tmp_path)
    assert not list(tmp_path.iterdir())  # the token is gone
    assert not cluster.workers_have_gpus(two_workers)


def test_a_folder_the_workers_see_elsewhere_is_refused(two_workers, tmp_path):
    """Each worker's filesystem has another folder at the benchmark's path (as a node-local disk would)."""
    (tmp_path / "node-local").mkdir()
    (tmp_path / "bench").mkdir()
    two_workers.register_plugin(WorkerSeesAnotherFolder(str(tmp_path / "bench"), str(tmp_path / "node-local")))
    try:
        with pytest.raises(InputError) as err:
            cluster.check_shared_folder(two_workers, tmp_path / "bench")
    finally:
        two_workers.unregister_worker_plugin(WorkerSeesAnotherFolder.name)
    assert err.value.path == str((tmp_path / "bench").resolve())
    assert "2 of 2 Dask worker(s) cannot read and write this folder" in str(err.value)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_worker_on_another_filesystem_is_refused(tmp_path):
    """A real `dask worker` process in its own mount namespace, with an empty filesystem mounted over the
    benchmark folder: it does not see the client's token."""
    from distributed import Client, LocalCluster

    folder = tmp_path / "bench"
    folder.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {folder}"], capture_output=True)
    if probe.returncode:
        pytest.skip(f"cannot mount in a private namespace here ({probe.stderr.decode().strip()})")
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0", silence_logs=40) as local, \
            Client(local) as client:
        worker = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {folder} && exec {sys.executable} -m "
                                          f"distributed.cli.dask_worker {local.scheduler_address} --nthreads 1 "
                                          "--no-dashboard --host 127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(1, timeout=60)
            with pytest.raises(InputError, match="1 of 1 Dask worker"):
                cluster.check_shared_folder(client, folder)
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def test_publish_outside_a_worker_is_a_no_op():
    cluster.publish("topic", "message")


def test_worker_cached_loads_once_and_keeps_the_latest(monkeypatch):
    monkeypatch.setattr(cluster, "_WORKER_OBJECTS", type(cluster._WORKER_OBJECTS)())
    loads = []

    def loader(key):
        return lambda: loads.append(key) or f"run {key}"

    assert cluster.worker_cached("a", loader("a")) == "run a"
    assert cluster.worker_cached("a", loader("a")) == "run a" and loads == ["a"]
    for key in ("b", "c"):
        cluster.worker_cached(key, loader(key))
    cluster.worker_cached("a", loader("a"))  # dropped (least recently used), loaded again
    assert loads == ["a", "b", "c", "a"] and len(cluster._WORKER_OBJECTS) == cluster.WORKER_CACHE_SIZE


def test_local_workers_are_pinned_to_their_own_gpu():
    pin = cluster.PinGPU(["2", "3"])
    assert [pin.device_for(name) for name in (0, 1, 2, "3")] == ["2", "3", "2", "3"]
