"""The whole-slide engine: one slide in, its nuclei out, in memory bounded by the settings, not the slide.

Four stages overlap, joined by bounded queues:

* a reader thread reads tiles at the run's µm/px (``read_at_mpp``: the pyramid level closest above it,
  resampled) into a queue of ``read_ahead`` tiles;
* the calling thread batches tiles through the network (``window.predict_batch`` with the Segmenter's
  forward: the same maps whole-image prediction makes of a window);
* a process pool post-processes each tile's maps (:func:`cellprobe.inference.slide_cells.tile_cells`), at
  most ``in_flight`` tiles at once, so the network goes on with the next batch meanwhile;
* results are taken back in tile order and appended to Parquet parts (:mod:`slide_resume`'s journal).

Per-slide memory is the queues plus one part of nuclei; the only things that grow with the slide are
counters. When every tile is done the parts are merged and the outputs written into the partial folder,
which is then renamed into place (:mod:`cellprobe.inference.slide_outputs`).

:func:`run_slide` is the per-slide entry point (a Dask worker keeping its Segmenter calls it once per slide).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import multiprocessing
import os
import queue
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cellprobe import __version__, atomic
from cellprobe.config import read_json
from cellprobe.errors import InputError
from cellprobe.inference.segmenter import Segmenter
from cellprobe.inference.slide_cells import CellContext, TileCells, tile_cells
from cellprobe.inference.slide_config import SlideSettings
from cellprobe.inference.slide_outputs import (
    CELLS,
    GEOJSON,
    OVERVIEW,
    SUMMARY,
    cell_schema,
    cells_table,
    merge_parts,
    write_geojson,
    write_overview,
    write_part,
)
from cellprobe.inference.slide_plan import SlideInputs, SlidePlan, plan_slide, stamp_difference
from cellprobe.inference.slide_resume import Journal, aside_path, check_partial_place, partial_dir, publish
from cellprobe.inference.slide_tiles import Tile
from cellprobe.inference.slide_windows import TileMaps, WindowCache
from cellprobe.inference.window import WindowConfig, predict_batch

#: the folder, in the output folder, of each slide's lock (one slide is worked on by one process at a time)
SLIDE_LOCKS = ".cellprobe-slides"

#: seconds between checks of the stop flag while a queue is full or empty
POLL_S = 0.1
#: seconds between a worker's checks that the process that made its pool is alive
PARENT_POLL_S = 1.0


class SlideProgress(Protocol):
    """What the engine reports while it works (a CLI draws a progress bar from it)."""

    def start(self, name: str, total: int, done: int) -> None: ...

    def advance(self, tiles: int, nuclei: int) -> None: ...


@dataclass
class SlideSummary:
    """One slide's outcome: its output ``folder``, ``skipped`` when a finished result was already there, and
    the content of its summary.json."""

    name: str
    folder: Path
    skipped: bool
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def nuclei(self) -> int:
        return int(self.data.get("nuclei", {}).get("total", 0))


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now


def network_facts(segmenter: Segmenter) -> dict[str, Any]:
    """What the nuclei depend on besides the run's stamp: the loaded weights (the trainable part; the frozen
    encoder is named by the stamp's identity), test-time augmentation, post-processing thresholds."""
    digest = hashlib.sha256()
    for network in segmenter.networks:
        for key, value in sorted(network.state_dict().items()):
            if not key.startswith("encoder."):
                digest.update(key.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return {"weights": digest.hexdigest(), "tta": segmenter.tta, "params": segmenter.params.model_dump(mode="json")}


#: what a slide's results folder holds: all of it is replaced when the slide is run again with --overwrite
RESULT_FILES = (CELLS, GEOJSON, SUMMARY, OVERVIEW)
#: the result files whose digests the summary records (a skipped slide's results are checked against them)
DIGESTED_FILES = (CELLS, GEOJSON, OVERVIEW)
#: the key of summary.json holding the sha256 of its other keys (:func:`cellprobe.hashing.record_check`)
CHECK = "check"


def make_pool(workers: int) -> Executor | None:
    """The post-processing processes (None: post-process in the calling thread). ``forkserver`` (``spawn``
    where it is missing): children that do not inherit the parent's torch threads or open slide handles."""
    if workers == 0:
        return None
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                               initializer=_watch_parent, initargs=(os.getpid(),))
    list(pool.map(_warm_up, range(workers)))  # start them now, not on the first tile (their imports take seconds)
    return pool


def _warm_up(_: int) -> None:
    import cellprobe.postprocess  # noqa: F401 - what every tile needs, imported once per worker


def _watch_parent(parent: int) -> None:
    """End this worker when the process that made the pool is gone: a worker holds both ends of its task
    pipe, so a parent killed with SIGKILL would otherwise leave it waiting for tasks forever. Ctrl-C is the
    parent's to handle (it shuts the pool down): a worker ignores it, so none prints a KeyboardInterrupt
    traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="watch parent").start()


def results_folder(out_dir: Path, name: str) -> Path:
    """Where a slide's finished results go: ``out_dir/<slide name>``."""
    return out_dir / name


def finished_result(out_dir: Path, plan: SlidePlan, overwrite: bool) -> dict[str, Any] | None:
    """The summary of a finished result of the same setup (the slide is then skipped), None when there is
    none or ``overwrite``; a result of another run or other settings is refused."""
    folder = results_folder(out_dir, plan.name)
    if not folder.exists() or overwrite:
        return None
    data = _recorded_summary(folder)
    if data.get("stamp") == plan.stamp:
        _check_complete(folder, data)
        return data
    raise InputError(folder, f"already holds results of another run, slide or settings (differs at "
                             f"{stamp_difference(data.get('stamp'), plan.stamp)}); pass --overwrite to replace them")


def _check_complete(folder: Path, summary: dict[str, Any]) -> None:
    """A finished results folder is skipped only whole and as written: every result file there with the
    digest its summary recorded. A lost, damaged or hand-replaced one is refused naming it rather than
    reported as done (a cells GeoJSON replaced by another slide's would otherwise pass as this one's)."""
    from cellprobe.hashing import changed_result, record_check

    if summary.get(CHECK) != record_check({k: v for k, v in summary.items() if k != CHECK}):
        raise InputError(folder / SUMMARY, f"is not the summary cellprobe wrote (its '{CHECK}' does not match its "
                                           "contents: edited by hand, or written by an earlier cellprobe); pass "
                                           "--overwrite to make the results again")
    files = summary.get("files")
    if (not isinstance(files, dict) or set(files) != set(DIGESTED_FILES)
            or not all(isinstance(v, str) for v in files.values())):
        raise InputError(folder / SUMMARY, f"records no digests of the result files ({', '.join(DIGESTED_FILES)}): "
                                           f"whether the results in {folder.name} are as written is unknown; "
                                           "pass --overwrite to make them again")
    changed = changed_result(folder, files)
    if changed is not None:
        path, problem = changed
        raise InputError(path, f"{problem}: the finished results in {folder.name} are incomplete; pass "
                               "--overwrite to make them again")


def _recorded_summary(folder: Path) -> dict[str, Any]:
    """The summary.json of a results folder, read strictly (a key given twice is no proof of the same setup).
    A folder without a readable summary cannot be told apart from another run's results: refused naming the
    summary and its problem (``--overwrite`` replaces it)."""
    try:
        data = read_json(folder / SUMMARY, "slide summary")
    except InputError as exc:
        problem = "is missing" if not (folder / SUMMARY).exists() else exc.problem
        raise InputError(folder / SUMMARY, f"{problem}: what made the results in {folder.name} is unknown; pass "
                                           "--overwrite to replace them") from None
    if not isinstance(data, dict):
        raise InputError(folder / SUMMARY, f"is not a slide summary (a JSON object): what made the results in "
                                           f"{folder.name} is unknown; pass --overwrite to replace them")
    return data


@dataclass
class _TileRead:
    """A tile, its windows (area coordinates, whole-image order) and the pixels they cover (``top``, ``left``:
    the block's place in the area)."""

    tile: Tile
    windows: list[tuple[int, int]]
    block: np.ndarray
    top: int
    left: int


def _reader(plan: SlidePlan, tiles: list[int], out: queue.Queue, stop: threading.Event, timer: _Timer) -> None:
    """Fill ``out`` with the tiles' reads in order, then None; an exception is passed on as the item."""
    from cellprobe.data.slide_reader import read_at_mpp

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    try:
        ox, oy = plan.grid.origin
        for index in tiles:
            tile = plan.grid.tile_at(index)
            start = time.perf_counter()
            windows = plan.windows.for_tile(tile, plan.grid.origin)
            y0, x0, y1, x1 = plan.windows.bounds(windows)
            block = read_at_mpp(plan.reader, plan.target_mpp, ox + x0, oy + y0, x1 - x0, y1 - y0)
            timer.add("read", start)
            if not put(_TileRead(tile, windows, block, y0, x0)):
                return
        put(None)
    except BaseException as exc:
        put(exc)


def _reads(source: queue.Queue, timer: _Timer) -> Iterator[_TileRead]:
    while True:
        start = time.perf_counter()
        item = source.get()
        timer.add("wait_for_reader", start)
        if isinstance(item, BaseException):
            raise item
        if item is None:
            return
        yield item


def _on_glass(plan: SlidePlan, key: tuple[int, int]) -> bool:
    """Whether the network window at ``key`` (area coordinates) touches no tissue: it is not computed."""
    t, s = plan.windows.config.tile, plan.scale
    x, y = plan.grid.origin[0] + key[1], plan.grid.origin[1] + key[0]
    return not plan.tissue.touches(x * s, y * s, t * s, t * s)


@functools.lru_cache(maxsize=1)
def _glass_maps(side: int, num_classes: int) -> dict[str, np.ndarray]:
    """The maps of a window without tissue: certain background, no nucleus (a tile that touches tissue at one
    corner does not run the network over its glass; where there is tissue the maps are the network's)."""
    semantic = np.zeros((3, side, side), np.float32)
    semantic[0] = 1.0
    types = np.zeros((num_classes + 1, side, side), np.float32)
    types[0] = 1.0
    return {"semantic": semantic, "distance": np.zeros((4, side, side), np.float32), "types": types}


def _tile_maps(segmenter: Segmenter, plan: SlidePlan, read: _TileRead, cache: WindowCache, batch_size: int,
               timer: _Timer) -> tuple[dict[str, np.ndarray], int]:
    """The tile's maps (whole-image prediction's, :mod:`slide_windows`) and the windows computed for it."""
    t = plan.windows.config.tile
    maps = TileMaps(read.tile, plan.grid.origin, plan.windows)
    tile_y = read.tile.y - plan.grid.origin[1]
    next_x, next_y = read.tile.x - plan.grid.origin[0] + plan.grid.step, tile_y + plan.grid.step
    shared: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    fresh: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    computed = 0
    # windows in whole-image order, each with its maps once known: the blend adds them in that order (a sum's
    # rounding depends on it), while the network's passes take the uncached ones batch_size at a time across
    # the cached ones between them
    pending: list[tuple[tuple[int, int], dict[str, np.ndarray] | None]] = []
    queue_: list[tuple[int, int]] = []
    glass = _glass_maps(t, segmenter.num_classes)

    def run() -> None:
        start = time.perf_counter()
        crops = np.stack([read.block[y - read.top:y - read.top + t, x - read.left:x - read.left + t]
                          for y, x in queue_])
        # every pass holds batch_size windows: a window's maps are then the same whichever windows share its pass
        # (BLAS and cuDNN pick their kernels by batch size), so a resumed slide, whose first tile computes
        # windows an uninterrupted run took from the cache, ends with the same cells
        out = predict_batch(crops, segmenter._forward, segmenter.device, batch_size=batch_size)
        timer.add("network", start)
        done = {key: {k: v[j] for k, v in out.items()} for j, key in enumerate(queue_)}
        for key, one in done.items():
            if key[1] + t > next_x or key[0] + t > next_y:
                shared[key] = fresh[key] = {k: v.copy() for k, v in one.items()}
        for key, known in pending:
            maps.add(*key, done[key] if known is None else known)
        pending.clear()
        queue_.clear()

    for key in read.windows:
        cached = cache.get(key) or (glass if _on_glass(plan, key) else None)
        if cached is None:
            queue_.append(key)
            pending.append((key, None))
            computed += 1
            if len(queue_) == batch_size:
                run()
            continue
        shared[key] = cached
        if queue_:
            pending.append((key, cached))  # added after the windows before it, once their pass is done
        else:
            maps.add(*key, cached)
    if queue_:
        run()
    cache.keep(shared, fresh, tile_y, next_x, next_y, t)
    return maps.result(), computed


class _Writer:
    """Takes tiles' nuclei in tile order and writes a part (and its journal line) every ``part_cells``
    nuclei or ``part_tiles`` tiles."""

    def __init__(self, journal: Journal, plan: SlidePlan, class_names: list[str], settings: SlideSettings,
                 timer: _Timer) -> None:
        self.journal, self.plan, self.class_names, self.settings, self.timer = (journal, plan, class_names,
                                                                                settings, timer)
        self.buffer: list[TileCells] = []
        self.tiles = journal.progress.tiles
        self.cells = journal.progress.cells
        self.cut = 0
        #: nuclei seen beyond the tissue (mask) by windows that touch it: dropped, as the area counted ends there
        self.off_tissue = 0
        #: network windows computed (more than the area's own where tile rows share windows)
        self.windows = 0
        #: copies run to fill up each tile's last pass (see :func:`_tile_maps`): the cost of that in windows
        self.filler = 0

    def add(self, cells: TileCells) -> None:
        self.buffer.append(cells)
        self.tiles += 1
        self.cut += cells.cut
        self.timer.seconds["postprocess"] += cells.seconds
        if sum(map(len, self.buffer)) >= self.settings.part_cells or len(self.buffer) >= self.settings.part_tiles:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        start = time.perf_counter()
        table = cells_table(self.buffer, self.journal.progress.cells + 1, self.plan.target_mpp / self.plan.scale,
                            self.class_names)
        part = self.journal.part_path()
        write_part(part, table)
        self.cells = self.journal.progress.cells + table.num_rows
        self.journal.record(part, self.tiles, self.cells)
        self.buffer = []
        self.timer.add("write", start)


def _process(segmenter: Segmenter, plan: SlidePlan, journal: Journal, settings: SlideSettings,
             pool: Executor | None, progress: SlideProgress | None, timer: _Timer) -> _Writer:
    """Run the tiles not yet journaled through reader → network → post-processing → writer."""
    writer = _Writer(journal, plan, segmenter.class_names, settings, timer)
    ctx = CellContext(segmenter.params, segmenter.num_classes, plan.scale, plan.target_mpp, plan.name)
    tiles = plan.todo[journal.progress.tiles:]
    reads: queue.Queue = queue.Queue(maxsize=settings.read_ahead)
    stop = threading.Event()
    thread = threading.Thread(target=_reader, args=(plan, tiles, reads, stop, timer), daemon=True,
                              name=f"read {plan.name}")
    pending: collections.deque[Future | TileCells] = collections.deque()
    limit = settings.max_in_flight()
    cache = WindowCache(settings.window_cache_mb * 2**20)

    def take_oldest() -> None:
        item = pending.popleft()
        start = time.perf_counter()
        cells = item.result() if isinstance(item, Future) else item
        timer.add("wait_for_postprocess", start)
        on_tissue = plan.tissue.covers(cells.x, cells.y)  # a window touching the tissue also sees beyond it:
        writer.off_tissue += len(cells) - int(on_tissue.sum())  # those nuclei lie outside the area counted
        writer.add(cells.subset(on_tissue) if not on_tissue.all() else cells)
        if progress is not None:
            progress.advance(1, len(cells))

    thread.start()
    try:
        for read in _reads(reads, timer):
            maps, computed = _tile_maps(segmenter, plan, read, cache, settings.batch_size, timer)
            writer.windows += computed
            writer.filler += -computed % settings.batch_size
            if pool is None:
                pending.append(tile_cells(maps, read.tile, ctx))
            else:
                while len(pending) >= limit:
                    take_oldest()
                pending.append(pool.submit(tile_cells, maps, read.tile, ctx))
            del maps
            while pending and (not isinstance(pending[0], Future) or pending[0].done()):
                take_oldest()
        while pending:
            take_oldest()
        writer.flush()
    finally:
        stop.set()
        thread.join()
        for item in pending:
            if isinstance(item, Future):
                item.cancel()
    return writer


def _finish(plan: SlidePlan, journal: Journal, class_names: list[str], settings: SlideSettings,
            timer: _Timer) -> tuple[Path, int]:
    start = time.perf_counter()
    result = journal.result_dir()
    total = merge_parts(journal.parts(), result / CELLS, cell_schema(class_names))
    write_geojson(result / CELLS, result / GEOJSON, class_names)
    thumbnail, downsample = plan.reader.thumbnail(settings.overview_side)
    write_overview(result / CELLS, result / OVERVIEW, thumbnail, downsample, plan.reader.mpp)
    timer.add("finish", start)
    return result, total


def _class_counts(cells: Path, class_names: list[str]) -> dict[str, int]:
    from cellprobe.inference.slide_outputs import iter_cells

    counts = np.zeros(len(class_names) + 1, dtype=np.int64)
    for batch in iter_cells(cells, ["class_id"]):
        counts += np.bincount(batch.column(0).to_numpy(), minlength=len(class_names) + 1)
    return {name: int(counts[i + 1]) for i, name in enumerate(class_names)}


def _summary(plan: SlidePlan, segmenter: Segmenter, counts: dict[str, int], resumed: int, writer: _Writer,
             timer: _Timer, settings: SlideSettings) -> dict[str, Any]:
    total = sum(counts.values())
    per_mm2 = (lambda n: n / plan.tissue_mm2) if plan.tissue_mm2 > 0 else (lambda n: float("nan"))
    reader = plan.reader
    return {
        "slide": str(plan.path), "name": plan.name, "reader": reader.kind,
        "level0": {"width": reader.levels[0].width, "height": reader.levels[0].height},
        "mpp": {"slide": reader.mpp, "source": reader.mpp_source, "target": plan.target_mpp, "run": plan.run_mpp},
        "level": plan.level, "level_downsample": reader.levels[plan.level].downsample,
        "region": plan.stamp["region"],
        "tiles": {"grid": len(plan.grid), "tissue": len(plan.todo), "resumed": resumed,
                  "side": settings.tile, "overlap": settings.overlap},
        "windows": {"computed": writer.windows, "filler": writer.filler,
                    "area": len(plan.windows.ys) * len(plan.windows.xs),
                    "side": plan.windows.config.tile, "overlap": plan.windows.config.overlap},
        "tissue_mm2": plan.tissue_mm2,
        "nuclei": {"total": total, "per_class": counts, "per_mm2": per_mm2(total),
                   "per_class_per_mm2": {k: per_mm2(v) for k, v in counts.items()},
                   "cut_at_tile_edges": writer.cut, "outside_tissue": writer.off_tissue},
        "seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
        "workers": settings.workers, "batch_size": settings.batch_size, "device": str(segmenter.device),
        "cellprobe": __version__, "run": plan.stamp["run"], "stamp": plan.stamp,
    }


def say_cut_nuclei(summary: SlideSummary) -> None:
    """Nuclei cut by a tile's inner edge are dropped (counted in summary.json): said, with what to change, as a
    smaller --overlap than the largest nucleus loses them (22 % of a slide's with --overlap 0)."""
    from cellprobe.data.validate import DataWarning

    cut = int(summary.data.get("nuclei", {}).get("cut_at_tile_edges", 0)) if not summary.skipped else 0
    if cut:
        overlap = summary.data.get("tiles", {}).get("overlap")
        warnings.warn(f"{summary.name}: {cut} nuclei reached past the tile overlap ({overlap} px) and were cut by tile "
                      "edges, so left out of the results (nuclei.cut_at_tile_edges); give a larger --overlap",
                      DataWarning, stacklevel=2)


def run_slide(segmenter: Segmenter, slide: Path, out_dir: Path, settings: SlideSettings | None = None,
              progress: SlideProgress | None = None, inputs: SlideInputs | None = None, overwrite: bool = False,
              pool: Executor | None = None) -> SlideSummary:
    """Segment every nucleus of ``slide`` into ``out_dir/<slide name>/`` (resuming a killed run, skipping a
    finished one). ``pool``: post-processing processes to reuse across slides (default: made here from
    ``settings.workers`` and shut down at the end)."""
    from cellprobe.hashing import folder_digests, record_check
    from cellprobe.inference.slide_digest import remember
    from cellprobe.locking import exclusive

    settings = settings or SlideSettings()
    inputs = inputs or SlideInputs()
    start = time.perf_counter()
    plan = plan_slide(Path(slide), segmenter.run, settings, inputs, segmenter.window, network_facts(segmenter),
                      out_dir)
    try:
        done = finished_result(out_dir, plan, overwrite)
        if done is not None:
            remember(plan.path, plan.name, out_dir, plan.stamp["slide"]["sha256"])
            return SlideSummary(plan.name, results_folder(out_dir, plan.name), True, done)
        with exclusive(out_dir / SLIDE_LOCKS / plan.name, f"slide {plan.name}"):
            remember(plan.path, plan.name, out_dir, plan.stamp["slide"]["sha256"])
            journal = Journal.open(partial_dir(out_dir, plan.name), plan.stamp, overwrite)
            resumed = journal.progress.tiles
            if progress is not None:
                progress.start(plan.name, len(plan.todo), resumed)
                progress.advance(0, journal.progress.cells)  # the resumed tiles' nuclei: the bar counts the slide's
            timer = _Timer()
            own_pool = pool is None and settings.workers > 0
            pool = make_pool(settings.workers) if own_pool else pool
            try:
                writer = _process(segmenter, plan, journal, settings, pool, progress, timer)
            finally:
                if own_pool and pool is not None:
                    pool.shutdown(cancel_futures=True)
            result, _ = _finish(plan, journal, segmenter.class_names, settings, timer)
            counts = _class_counts(result / CELLS, segmenter.class_names)
            timer.add("total", start)
            data = _summary(plan, segmenter, counts, resumed, writer, timer, settings)
            data["files"] = folder_digests(result, DIGESTED_FILES)
            data = json.loads(json.dumps(atomic.json_ready(data)))  # as it reads back
            data[CHECK] = record_check(data)  # a count or digest edited by hand no longer matches it
            atomic.write_json(result / SUMMARY, data)
            final = results_folder(out_dir, plan.name)
            publish(result, final, journal.folder)
            return SlideSummary(plan.name, final, False, data)
    finally:
        plan.close()


def seconds_per_mm2(summary: dict[str, Any]) -> float:
    """Wall seconds per mm² of tissue processed (the benchmark's figure)."""
    return summary["seconds"]["total"] / summary["tissue_mm2"] if summary["tissue_mm2"] else float("nan")



def _refuse_foreign_files(results: Path) -> None:
    """A results folder holding anything else (a user's notes, scores) is refused: --overwrite replaces the
    folder whole, and would delete them unsaid."""
    if results.is_dir():
        foreign = sorted(p.name for p in results.iterdir() if p.name not in RESULT_FILES)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise InputError(results, f"holds {shown}, which are not slide results: --overwrite replaces the "
                                      "folder whole; move them out first")


def check_slides(run: Any, slides: list[Path], out_dir: Path, settings: SlideSettings, inputs: SlideInputs,
                 window: WindowConfig, overwrite: bool = False) -> None:
    """Every check that needs no network, for all slides before the first one starts: the output folder,
    names that would collide, each slide (readable, µm/px, region, tissue) and results of another run already
    in place."""
    from cellprobe.inference.slide_digest import check_record_place
    from cellprobe.inference.slide_plan import run_identity, slide_name
    from cellprobe.run.run_folder import refuse_results_place

    atomic.output_folder(out_dir, create=False)
    refuse_results_place(out_dir, run.path)
    by_name: dict[str, Path] = {}  # by atomic.portable_name: folders differing in case or é spelling collide
    held = atomic.entries_by_portable_name(out_dir)
    for path in map(Path, slides):
        name = slide_name(path)
        other = by_name.get(atomic.portable_name(name))
        if other is not None:
            if other.resolve() == path.resolve():
                raise InputError(path, "is given twice")
            if slide_name(other) != name:
                raise InputError(path, f"'{name}' and '{slide_name(other)}' ({other}) differ only in case or "
                                       "Unicode spelling: their results folders would collide on macOS and Windows "
                                       "file systems")
            raise InputError(path, f"shares the name '{name}' with {other}; their outputs would overwrite each other")
        if len(partial_dir(out_dir, name).name.encode()) > atomic.MAX_RESULT_NAME_BYTES:
            raise InputError(path, f"its name is too long for its results' folder names (over "
                                   f"{atomic.MAX_RESULT_NAME_BYTES} bytes); rename the file")
        if name.startswith("."):  # cellprobe's own folders beside the results (.<slide>.partial, locks) do
            raise InputError(path, f"a slide name may not start with '.' ('{name}'); rename the file")
        results = results_folder(out_dir, name)
        if path.resolve() == results.resolve() or path.resolve().is_relative_to(results.resolve()):
            raise InputError(path, f"its results folder {results} would replace it; give another --out")
        check_record_place(out_dir, name)
        check_partial_place(partial_dir(out_dir, name))
        # the results, each slide's lock, and an earlier result an interrupted --overwrite left aside
        for place, what in ((results, "this slide's results"), (out_dir / SLIDE_LOCKS, "its slides' locks"),
                            (out_dir / SLIDE_LOCKS / name, "this slide's lock"),
                            (aside_path(results), "results an --overwrite moves aside")):
            problem = atomic.own_folder_problem(place)
            if problem is not None:
                raise InputError(place, f"is {problem}, where cellprobe keeps {what} in its own folder; move it, "
                                        "or give another --out")
        if overwrite:  # the folder is replaced whole (without, a finished one is skipped or refused)
            _refuse_foreign_files(results)
        for own in (results.name, partial_dir(out_dir, name).name):  # finished, or a killed slide's work folder
            earlier = held.get(atomic.portable_name(own))
            if earlier is not None and earlier.name != own:
                raise InputError(path, f"its folder {own} differs only in case or Unicode spelling from {earlier}, "
                                       "already in the output folder; they would be one folder on macOS and "
                                       "Windows file systems: rename the slide, or give another --out")
        by_name[atomic.portable_name(name)] = path
    for path in slides:
        plan = plan_slide(Path(path), run, settings, inputs, window, out_dir=out_dir)
        plan.close()
        folder = results_folder(out_dir, plan.name)
        if overwrite or not folder.exists():
            continue
        same_run = _recorded_summary(folder).get("run") == run_identity(run)
        if not same_run:
            raise InputError(folder, "already holds results of another run; pass --overwrite to replace them")
