"""What the Dask tests hand to worker processes (cell functions, worker plugins): in an importable module, since
pytest's importlib mode imports the test modules under names the workers cannot import."""

from __future__ import annotations

import os
import time
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin
from tests.bench import synth


class SlowCell:
    """A cell function that notes its start (with its process id), takes ``seconds``, then notes its finish."""

    def __init__(self, marks: Path, seconds: float) -> None:
        self.marks, self.seconds = marks, seconds

    def __call__(self, task, work_dir):
        cid = task.cell.cell_id
        (self.marks / f"start-{cid}-{os.getpid()}").write_text(str(os.getpid()))
        time.sleep(self.seconds)
        (self.marks / f"finish-{cid}-{os.getpid()}").touch()
        return synth.fake_cell_output(task.cell.dataset, task.cell.model, task.cell.seed, 0.8)


class CountChunkWrites(WorkerPlugin):
    """Every feature-cache chunk a worker writes is logged (cache folder, chunk, pid) to the file ``log``."""

    name = "count-chunk-writes"

    def __init__(self, log: str) -> None:
        self.log = log

    def setup(self, worker) -> None:
        from cellprobe.encoders.cache import FeatureCache

        write, log = FeatureCache.write_chunk, self.log

        def logged(cache, chunk, arrays):
            write(cache, chunk, arrays)
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{cache.directory}\t{chunk}\t{os.getpid()}\n")

        FeatureCache.write_chunk = logged


class WorkerSeesAnotherFolder(WorkerPlugin):
    """A worker whose filesystem has another folder at ``client_root`` (a node-local disk with the same path):
    it reads the shared-folder token under ``worker_root`` instead."""

    name = "worker-sees-another-folder"

    def __init__(self, client_root: str, worker_root: str) -> None:
        self.client_root, self.worker_root = client_root, worker_root

    def setup(self, worker) -> None:
        import cellprobe.cluster as cluster

        read, client_root, worker_root = cluster.read_shared_token, self.client_root, self.worker_root

        def read_elsewhere(path: str):
            return read(path.replace(client_root, worker_root, 1))

        cluster.read_shared_token = read_elsewhere
