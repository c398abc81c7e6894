"""The benchmark's cells as tasks of a Dask cluster (``cellprobe bench --cluster/--scheduler``).

Each unfinished cell is one task (key ``cellprobe-cell-<folder tag>-<cell id>``: stable, unique per benchmark
folder), asking for one ``GPU`` when the cells train on GPUs. Cells that share a feature cache (the seeds of a
pretrained encoder on one dataset and fold) depend on one task that builds it, under a file lock, so no two
workers build the same cache. The worker runs the cell and writes its folder (result.json last, as in-process);
the client alone rewrites index.csv. A task whose worker dies is rerun by Dask's scheduler on another worker
(up to :data:`cellprobe.cluster.WORKER_DEATHS_PER_TASK` times); the rerun finds the dead worker's partial folder
unfinished (no valid result.json: :func:`~cellprobe.bench.layout.is_done`) and resumes its training. A failed
cell follows ``on_error`` as in-process; the task itself is not retried (a cell that raised would raise
again, hours of GPU later).
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cellprobe import atomic
from cellprobe import cluster as dask_cluster
from cellprobe.bench import layout
from cellprobe.bench.bench_config import BenchConfig
from cellprobe.bench.matrix import CellFn, CellTask, expand
from cellprobe.bench.runner import BenchSummary, record_failure, save_output, write_index
from cellprobe.config import dump_config
from cellprobe.errors import InputError
from cellprobe.locking import exclusive

#: event topics from the cell tasks to the client: a cell started, progress inside a cell
START_TOPIC = "cellprobe-cell-start"
PROGRESS_TOPIC = "cellprobe-cell-progress"
#: a feature-cache build waits for another holder of its lock (polling), at most this long
CACHE_LOCK_POLL_S = 2.0
CACHE_LOCK_WAIT_S = 12 * 3600.0


@dataclass(frozen=True)
class CellReport:
    """What a cell task gives back: it finished (now, or in an earlier attempt of a worker that died after
    writing it), where, and in how many seconds."""

    cell_id: str
    host: str
    seconds: float
    earlier: bool = False


class _Progress:
    """Progress inside a cell (epochs), sent from the worker to the client; picklable."""

    def __init__(self, cell_id: str) -> None:
        self.cell_id = cell_id

    def __call__(self, label: str, done: int, total: int) -> None:
        dask_cluster.publish(PROGRESS_TOPIC, (self.cell_id, label, done, total))


def run_cell_task(task: CellTask, cell_fn: CellFn, *_cache_built: Any) -> CellReport:
    """On a worker: run one cell into its folder (``_cache_built``: the results of the tasks it waits for)."""
    cid = task.cell.cell_id
    host = socket.gethostname()
    if layout.is_done(task.bench_dir, task.cell, task.test_only_names):
        return CellReport(cid, host, 0.0, earlier=True)
    dask_cluster.publish(START_TOPIC, cid)
    out_dir = layout.cell_dir(task.bench_dir, task.cell)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    output = cell_fn(replace(task, progress=_Progress(cid)), out_dir)
    seconds = time.perf_counter() - t0
    save_output(task, output, seconds, host=host)
    return CellReport(cid, host, round(seconds, 2))


def build_feature_cache(task: CellTask) -> str:
    """On a worker: fill the feature cache that ``task``'s cell (and the cells sharing it) train from, as the
    cell's training would, under the cache folder's lock; returns the folder."""
    import torch

    from cellprobe.bench.cell import cell_config
    from cellprobe.run.network import build_encoder
    from cellprobe.training.build import open_training_data
    from cellprobe.training.cached import cached_sets

    config = cell_config(task, layout.cell_dir(task.bench_dir, task.cell) / layout.CELL_RUN)
    if config.trainer.threads is not None:
        torch.set_num_threads(config.trainer.threads)
    with cache_lock(config.feature_cache_dir()):
        cached_sets(config, open_training_data(config), build_encoder(config))
    return str(config.feature_cache_dir())


@contextlib.contextmanager
def cache_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock (:func:`cellprobe.locking.exclusive`), waiting while another process holds it."""
    deadline = time.monotonic() + CACHE_LOCK_WAIT_S
    while True:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(exclusive(folder, "building a feature cache"))
            except InputError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(CACHE_LOCK_POLL_S)
                continue
            yield
            return


def shared_caches(config: BenchConfig, tasks: list[CellTask], cell_fn: CellFn) -> dict[Path, list[CellTask]]:
    """The feature caches two or more of ``tasks`` train from (cached mode of the real cell function, whose
    training builds them; an injected one may not), with their cells."""
    from cellprobe.bench.cell import run_cell

    if not config.training.cache_features or cell_fn is not run_cell:
        return {}
    groups: dict[Path, list[CellTask]] = {}
    for task in tasks:
        where = task.feature_cache_dir()
        if where is not None:
            groups.setdefault(where, []).append(task)
    return {where: group for where, group in groups.items() if len(group) > 1}


def cells_need_gpu(config: BenchConfig, client: Any) -> bool:
    """Whether each cell task asks for a GPU: the cells train on one (``trainer.accelerator`` gpu/cuda, or
    auto on workers that offer GPUs). Refused when they must and no worker offers one (they would wait
    forever)."""
    accelerator = config.training.trainer.accelerator
    offered = dask_cluster.workers_have_gpus(client)
    if accelerator in ("gpu", "cuda") and not offered:
        raise InputError(None, f"config key 'training.trainer.accelerator' is '{accelerator}' but no Dask worker "
                               f"offers a GPU (resource '{dask_cluster.GPU}')")
    return offered and accelerator in ("gpu", "cuda", "auto")


def dispatch_cells(config: BenchConfig, bench_dir: Path, cell_fn: CellFn, spec: dask_cluster.ClusterSpec,
                   on_cell: Callable[[CellTask, str], None] | None,
                   progress: Callable[[str, int, int], None] | None,
                   notify: Callable[[str], None] | None) -> BenchSummary:
    """Every unfinished cell as a task of ``spec``'s cluster, in the checked and locked benchmark folder; the
    same callbacks and summary as the in-process runner (``on_cell`` "start" when a worker starts a cell)."""
    summary = BenchSummary()
    start = time.perf_counter()
    pending: list[CellTask] = []
    for task in expand(config):
        task = replace(task, bench_dir=bench_dir)
        if layout.is_done(bench_dir, task.cell, task.test_only_names):
            summary.skipped.append(task.cell.cell_id)
            if on_cell:
                on_cell(task, "skip")
        else:
            pending.append(task)
    with dask_cluster.open_client(spec, bench_dir) as client:
        dask_cluster.check_shared_folder(client, bench_dir)
        gpu = cells_need_gpu(config, client)
        atomic.write_text(bench_dir / layout.CONFIG, dump_config(config))
        if notify:
            link = dask_cluster.dashboard_link(client)
            workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            notify(f"{spec.describe()}: {workers} worker(s) now, {len(pending)} cell(s) to run; dashboard: "
                   f"{link or 'none (install bokeh for it)'}; Dask logs in {bench_dir / dask_cluster.LOG_DIR}")
        if pending:
            _run_tasks(client, config, bench_dir, cell_fn, pending, gpu, on_cell, progress, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def _run_tasks(client: Any, config: BenchConfig, bench_dir: Path, cell_fn: CellFn, pending: list[CellTask], gpu: bool,
               on_cell: Callable[[CellTask, str], None] | None, progress: Callable[[str, int, int], None] | None,
               summary: BenchSummary) -> None:
    """Submit the cache builds and the cells, then collect the cells as they finish."""
    from distributed import as_completed

    tag = hashlib.sha256(str(bench_dir.resolve()).encode()).hexdigest()[:12]
    resources = dask_cluster.gpu_resources(gpu)
    by_id = {t.cell.cell_id: t for t in pending}
    started: set[str] = set()
    lock = threading.Lock()

    def on_start(cid: str) -> None:  # on the client's event thread; a rerun after a worker died starts again
        with lock:
            first = cid in by_id and cid not in started
            started.add(cid)
        if first and on_cell:
            on_cell(by_id[cid], "start")

    dask_cluster.subscribe(client, START_TOPIC, on_start)
    if progress:
        dask_cluster.subscribe(client, PROGRESS_TOPIC, lambda m: progress(f"{m[0]}: {m[1]}", m[2], m[3]))
    builds = {where: client.submit(build_feature_cache, group[0], key=f"cellprobe-cache-{tag}-{where.name}",
                                   pure=False, resources=resources)
              for where, group in shared_caches(config, pending, cell_fn).items()}
    futures = {}
    for task in pending:
        deps = [builds[w] for w in (task.feature_cache_dir(),) if w in builds]
        future = client.submit(run_cell_task, task, cell_fn, *deps, key=f"cellprobe-cell-{tag}-{task.cell.cell_id}",
                               pure=False, resources=resources)
        futures[future] = task
    try:
        for future in as_completed(futures):
            task = futures[future]
            cid = task.cell.cell_id
            try:
                future.result()
            except InputError:
                raise
            except Exception as exc:  # the cell, its cache build, or its worker dying too often
                if config.on_error == "stop":
                    raise
                summary.failed[cid] = record_failure(layout.cell_dir(bench_dir, task.cell), exc)
                if on_cell:
                    on_cell(task, "failed")
                continue
            write_index(bench_dir)
            summary.done.append(cid)
            if on_cell:
                on_cell(task, "done")
    finally:
        unfinished = [f for f in (*futures, *builds.values()) if not f.done()]
        if unfinished:  # stopped early (bad input, on_error: stop): the rest is not wanted
            client.cancel(unfinished)
