"""``cellprobe slide``: segment every nucleus of whole-slide images with a trained run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from cellprobe.cli.options import TTA, Checkpoint, Cluster, ClusterConfig, Device, Overwrite, Scheduler, Sets


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    """``x,y,w,h`` (level-0 px) → a tuple; anything else is one line naming --region."""
    from cellprobe.errors import InputError

    if text is None:
        return None
    parts = text.split(",")
    # plain decimal digits only: int() also reads ' 1', '1_0', '+1' and '١' (Arabic-Indic)
    values = tuple(int(p) for p in parts) if all(re.fullmatch(r"-?[0-9]+", p) for p in parts) else ()
    if len(values) != 4:
        raise InputError("--region", f"expects x,y,width,height in level-0 pixels (integers), got {text!r}")
    return values  # type: ignore[return-value]


class _Bar:
    """One rich progress bar per slide: tiles done / total, nuclei found, tiles/s and ETA."""

    def __init__(self, progress: Any) -> None:
        self.progress, self.task, self.nuclei = progress, None, 0

    def start(self, name: str, total: int, done: int) -> None:
        from cellprobe.cli.progress_bars import show

        show(self.progress)
        self.nuclei = 0
        self.task = self.progress.add_task(name, total=total, completed=done, nuclei=0)

    def advance(self, tiles: int, nuclei: int) -> None:
        self.nuclei += nuclei
        self.progress.update(self.task, advance=tiles, nuclei=self.nuclei)


def _progress() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    class Speed(TextColumn):
        def render(self, task: Any) -> Any:
            from rich.text import Text

            return Text(f"{task.speed:.2f} tiles/s" if task.speed else "… tiles/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tiles"),
                    TaskProgressColumn(), TextColumn("{task.fields[nuclei]} nuclei"), Speed(""),
                    TimeRemainingColumn(), console=Console(stderr=True))


def register(app: typer.Typer) -> None:
    @app.command("slide")
    def slide_cmd(
        run: Path = typer.Argument(..., help="Run folder (from `cellprobe train`)."),
        slides: list[Path] = typer.Argument(..., help="Whole-slide images (SVS, NDPI, pyramidal or OME-TIFF, ...)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder: one <slide name>/ folder per slide."),
        mpp: float | None = typer.Option(None, "--mpp", help="The slides' µm/px (default: their metadata)."),
        target_mpp: float | None = typer.Option(None, "--target-mpp",
                                                help="µm/px the network sees (default: the run's)."),
        tissue_mask: Path | None = typer.Option(None, "--tissue-mask",
                                                help="Tissue as a QuPath GeoJSON annotation file or a PNG "
                                                     "(one slide; default: detected on a thumbnail)."),
        region: str | None = typer.Option(None, "--region", help="Only x,y,width,height (level-0 px; one slide)."),
        tile: int | None = typer.Option(None, "--tile", help="Side of the tiles post-processed at once, in "
                                                             "pixels at the target µm/px (multiple of 32; default "
                                                             "1024)."),
        overlap: int | None = typer.Option(None, "--overlap", help="Pixels shared by neighbouring tiles, more "
                                                                   "than the largest nucleus (default 96)."),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Network windows per pass (default 4)."),
        workers: int | None = typer.Option(None, "--workers", help="Post-processing processes (0: none; "
                                                                   "default 2)."),
        resample: bool = typer.Option(True, "--resample/--no-resample",
                                      help="Resample to the run's µm/px (or refuse slides far from it)."),
        checkpoint: Checkpoint = "best",
        device: Device = None,
        tta: TTA = 1,
        overwrite: Overwrite = False,
        set_: Sets = (),
        cluster: Cluster = None,
        cluster_config: ClusterConfig = None,
        scheduler: Scheduler = None,
    ) -> None:
        """Write cells.parquet, cells.geojson.gz (QuPath detections), summary.json and overview.png per slide;
        a killed slide resumes, a finished one is skipped. With --cluster or --scheduler the slides run as
        tasks of a Dask cluster, one slide per task."""
        from cellprobe.cli.options import cluster_spec, with_sets
        from cellprobe.config import parse_config, with_overrides
        from cellprobe.errors import InputError
        from cellprobe.inference.slide_config import SlideSettings
        from cellprobe.inference.slide_engine import check_slides, make_pool, run_slide
        from cellprobe.inference.slide_plan import SlideInputs
        from cellprobe.run.run_folder import Run

        spec = cluster_spec(cluster, cluster_config, scheduler)  # checked before any work
        own = {"tile": tile, "overlap": overlap, "batch_size": batch_size, "workers": workers,
               "resample": None if resample else False}
        own = {k: v for k, v in own.items() if v is not None}
        overrides = with_sets(set_, own, fixed=list(own))
        flags = {"resample": "--no-resample"}  # the flag that sets the key, as the user typed it
        given = {k: (flags.get(k, f"--{k.replace('_', '-')}") if k in own else f"--set {k}") for k in overrides}
        settings = parse_config(SlideSettings, with_overrides({}, overrides), "--tile/--overlap/--set", given)
        if "workers" in overrides:  # the default (2) is not refused on a 1-core machine; a value given is
            _check_workers(settings.workers, given["workers"], spec)
        if len(slides) > 1 and (tissue_mask is not None or region is not None):
            raise InputError(None, "--tissue-mask and --region apply to one slide; give one slide")
        _refuse_unused(settings, given, tissue_mask is not None)
        inputs = SlideInputs(mpp=mpp, target_mpp=target_mpp, region=parse_region(region), tissue_mask=tissue_mask)
        run_folder = Run.open(run)
        from cellprobe.inference.window import WindowConfig

        check_slides(run_folder, slides, out, settings, inputs, WindowConfig(), overwrite)  # before loading
        if spec is not None:
            from cellprobe.cluster import check_log_place

            check_log_place(out)
            _on_cluster(spec, run_folder.path, checkpoint, device, tta, slides, out, settings, inputs, overwrite)
            return

        from cellprobe.inference.segmenter import Segmenter

        segmenter = Segmenter(run_folder, checkpoint=checkpoint, device=device, tta=tta)
        pool = make_pool(settings.workers)
        from cellprobe.cli.progress_bars import shown_on_first_use

        try:
            with shown_on_first_use(_progress()) as bars:  # started by the first slide's bar
                for path in slides:
                    _said(bars.console, run_slide(segmenter, path, out, settings, _Bar(bars), inputs, overwrite, pool))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        typer.echo(f"wrote nuclei of {len(slides)} slide(s) to {out}")


def _refuse_unused(settings: Any, given: dict[str, str], masked: bool) -> None:
    """Settings this command would not use, refused rather than ignored: the predict command's size limit,
    and with --tissue-mask how tissue is detected (only ``tissue.thumbnail_side`` stays: the mask's scale)."""
    from cellprobe.data.tissue import TissueSettings
    from cellprobe.errors import InputError

    unused = ["predict_large_pixels"]
    if masked:
        unused += [f"tissue.{k}" for k in TissueSettings.model_fields if k != "thumbnail_side"]
    changed = settings.non_default(*unused)
    if changed:
        why = ("applies to `cellprobe predict` only" if changed[0] == "predict_large_pixels" else
               "is not used with --tissue-mask (the mask is the tissue)")
        raise InputError(given.get(changed[0], "--set"), f"{changed[0]} {why}")


def _check_workers(workers: int, option: str, spec: Any) -> None:
    """--workers against the cores the post-processing pools run on: this machine's (a local run), its share
    for each worker of a local cluster (local:N runs N slides at once, each with its own pool), or those each
    SLURM job asks for; a --scheduler's workers are not known here."""
    from cellprobe.inference.slide_config import check_workers
    from cellprobe.machine import usable_cores

    if spec is None:
        check_workers(workers, option)
    elif spec.kind == "local":
        cores = max(1, usable_cores() // spec.workers)
        check_workers(workers, option, cores, f"for each of local:{spec.workers}'s workers ({usable_cores()} "
                                              f"usable here, shared by {spec.workers} slides at once)")
    elif spec.kind == "slurm" and spec.slurm is not None:
        check_workers(workers, option, spec.slurm.cores, "in each SLURM job (cores in --cluster-config)")


def _said(console: Any, summary: Any) -> None:
    """One line per finished slide (and a warning line of the nuclei its tiles cut)."""
    from cellprobe.inference.slide_engine import say_cut_nuclei

    say_cut_nuclei(summary)
    if summary.skipped:
        console.print(f"{summary.name}: finished earlier, skipped ({summary.folder})")
    else:
        d = summary.data
        console.print(f"{summary.name}: {summary.nuclei} nuclei in {d['tissue_mm2']:.2f} mm² of tissue, "
                      f"{d['seconds']['total']:.0f} s → {summary.folder}")


def _on_cluster(spec: Any, run: Path, checkpoint: str, device: str | None, tta: int, slides: list[Path], out: Path,
                settings: Any, inputs: Any, overwrite: bool) -> None:
    """The slides as tasks of a Dask cluster: a bar of slides, and a bar of tiles per slide a worker runs."""
    import threading

    from cellprobe.inference.slide_cohort import NetworkChoice, run_cohort

    lock = threading.Lock()
    with _progress() as bars:
        total = bars.add_task("slides", total=len(slides), nuclei=0)
        per_slide: dict[str, _Bar] = {}

        def on_progress(message: tuple) -> None:  # from the client's event thread
            kind, name, a, b = message
            with lock:
                if kind == "start":
                    per_slide[name] = _Bar(bars)
                    per_slide[name].start(name, a, b)
                elif name in per_slide:
                    per_slide[name].advance(a, b)

        def on_slide(summary: Any) -> None:
            bars.advance(total)
            _said(bars.console, summary)

        run_cohort(spec, NetworkChoice(str(run), checkpoint, device, tta), slides, out, settings, inputs, overwrite,
                   on_progress, on_slide, notify=bars.console.print)
    typer.echo(f"wrote nuclei of {len(slides)} slide(s) to {out}")
