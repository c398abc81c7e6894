"""A cohort of slides on a Dask cluster: one task per slide, each worker loading the run once and keeping it.

Every slide runs :func:`~cellprobe.inference.slide_engine.run_slide` on some worker, so the resume and skip
rules are the engine's own: a slide whose worker dies is rerun on another (Dask reschedules it) and resumes from
its journal; a finished slide is skipped. The client checks every slide and the output folder first
(:func:`~cellprobe.inference.slide_engine.check_slides`), that the workers see the output folder
(:func:`cellprobe.cluster.check_shared_folder`), and draws one bar of slides and one of each running slide's
tiles from what the workers publish.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellprobe import cluster as dask_cluster
from cellprobe.inference.slide_config import SlideSettings
from cellprobe.inference.slide_engine import SlideSummary, make_pool, run_slide
from cellprobe.inference.slide_plan import SlideInputs

#: what workers publish while a slide runs: ("start", name, total tiles, done) and ("advance", name, tiles, nuclei)
PROGRESS_TOPIC = "cellprobe-slide-progress"


@dataclass(frozen=True)
class NetworkChoice:
    """How each worker loads the run: the same as a local ``cellprobe slide`` would."""

    run: str
    checkpoint: str = "best"
    device: str | None = None
    tta: int = 1


class _Published:
    """The engine's progress callbacks, sent to the client as Dask events."""

    def __init__(self) -> None:
        self.name = ""

    def start(self, name: str, total: int, done: int) -> None:
        self.name = name
        dask_cluster.publish(PROGRESS_TOPIC, ("start", name, total, done))

    def advance(self, tiles: int, nuclei: int) -> None:
        dask_cluster.publish(PROGRESS_TOPIC, ("advance", self.name, tiles, nuclei))


def slide_task(network: NetworkChoice, slide: str, out_dir: str, settings: SlideSettings, inputs: SlideInputs,
               overwrite: bool) -> SlideSummary:
    """One slide on a worker: its Segmenter and post-processing pool are loaded once per worker and reused."""
    from cellprobe.inference.segmenter import Segmenter

    segmenter = dask_cluster.worker_cached(
        ("segmenter", network), lambda: Segmenter(network.run, checkpoint=network.checkpoint,
                                                  device=network.device, tta=network.tta))
    pool = dask_cluster.worker_cached(("slide-pool", settings.workers), lambda: make_pool(settings.workers))
    return run_slide(segmenter, Path(slide), Path(out_dir), settings, _Published(), inputs,
                     overwrite, pool)


def run_cohort(spec: Any, network: NetworkChoice, slides: list[Path], out_dir: Path, settings: SlideSettings,
               inputs: SlideInputs, overwrite: bool, on_progress: Callable[[tuple], None] | None = None,
               on_slide: Callable[[SlideSummary], None] | None = None,
               notify: Callable[[str], None] | None = None) -> list[SlideSummary]:
    """Every slide as a task of ``spec``'s cluster (slides checked already); summaries in the slides' order."""
    from distributed import as_completed

    out_dir.mkdir(parents=True, exist_ok=True)
    with dask_cluster.open_client(spec, out_dir) as client:
        dask_cluster.check_shared_folder(client, out_dir)
        gpu = network.device != "cpu" and dask_cluster.workers_have_gpus(client)
        if notify:
            workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            notify(f"{spec.describe()}: {workers} worker(s) now, {len(slides)} slide(s); dashboard: "
                   f"{dask_cluster.dashboard_link(client) or 'none (install bokeh for it)'}; Dask logs in "
                   f"{out_dir / dask_cluster.LOG_DIR}")
        if on_progress:
            dask_cluster.subscribe(client, PROGRESS_TOPIC, on_progress)
        tag = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:12]
        futures = {client.submit(slide_task, network, str(path), str(out_dir), settings, inputs, overwrite,
                                 key=f"cellprobe-slide-{tag}-{i}-{path.stem}", pure=False,
                                 resources=dask_cluster.gpu_resources(gpu)): i
                   for i, path in enumerate(slides)}
        summaries: dict[int, SlideSummary] = {}
        try:
            for future in as_completed(futures):
                summaries[futures[future]] = future.result()
                if on_slide:
                    on_slide(summaries[futures[future]])
        finally:
            client.cancel([f for f in futures if not f.done()])
    return [summaries[i] for i in range(len(slides))]
