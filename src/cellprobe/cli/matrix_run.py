"""Run a benchmark matrix with a progress display, then write its report: ``cellprobe bench`` and
``cellprobe demo``. Each cell's framework output goes to its run folder's log (see
:func:`cellprobe.training.fit.train`), so the terminal holds only these bars and cellprobe's lines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cellprobe.bench.bench_config import BenchConfig
    from cellprobe.bench.report import ReportOptions
    from cellprobe.cluster import ClusterSpec


def run_and_report(cfg: BenchConfig, bench_dir: Path, report: ReportOptions | None,
                   cluster: ClusterSpec | None = None) -> Path | None:
    """Run the matrix with a progress bar over cells; write the report when no cell failed. ``cluster``: run
    the cells as Dask tasks (the bar then counts done, running and failed cells, with an ETA).

    Returns the report's path (None when not asked for). Failed cells → a list on stderr and exit status 1.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cellprobe.bench.report import build_report, check_report_target
    from cellprobe.bench.runner import expand, run_bench
    from cellprobe.cli.progress_bars import cluster_cell_display, report_progress, show, shown_on_first_use

    if report is not None and bench_dir.is_dir():  # before the cells: a report.md not of this bench is not
        check_report_target(bench_dir, bench_dir)  # replaced at the end, after hours of work
    console = Console(stderr=True)
    if cluster is not None:
        with cluster_cell_display(console, len(list(expand(cfg)))) as (on_cell, on_progress):
            summary = run_bench(cfg, bench_dir, on_cell=on_cell, progress=on_progress, cluster=cluster,
                                notify=console.print)
    else:
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console)
        with shown_on_first_use(progress):
            bar = progress.add_task("cells", total=len(list(expand(cfg))))

            def on_cell(task, status: str) -> None:
                show(progress)
                if status == "start":
                    progress.update(bar, description=task.cell.cell_id)
                else:
                    progress.advance(bar)
                    if status == "failed":
                        console.print(f"[red]failed[/red] {task.cell.cell_id} (see its error.txt)")

            inner = progress.add_task("", total=None, visible=False)

            def on_progress(label: str, done: int, total: int) -> None:
                progress.update(inner, description=label, completed=done, total=total, visible=done < total)

            summary = run_bench(cfg, bench_dir, on_cell=on_cell, progress=on_progress)
    console.print(f"{len(summary.done)} cell(s) run, {len(summary.skipped)} already done, "
                  f"{len(summary.failed)} failed, {summary.seconds:.0f} s → {bench_dir}")
    if summary.outside:
        console.print(f"note: {len(summary.outside)} finished cell(s) in {bench_dir} are not in this config's matrix "
                      f"({', '.join(summary.outside[:3])}{', …' if len(summary.outside) > 3 else ''}); the report "
                      "includes them")
    if summary.failed:
        for cid, err in summary.failed.items():
            console.print(f"  [red]{cid}[/red]: {err}")
        raise typer.Exit(1)
    if report is None:
        return None
    html, _ = build_report(bench_dir, options=report, progress=report_progress())
    return html
