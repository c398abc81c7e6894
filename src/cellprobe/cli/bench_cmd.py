"""``cellprobe bench CONFIG.yaml``: run (or resume) a benchmark matrix, then write its report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cellprobe.bench.config import BenchConfig
    from cellprobe.bench.report import ReportOptions


def parse_sets(items: list[str]) -> dict:
    """``--set key.path=value`` pairs (values parsed as YAML) → overrides for :func:`load_config`."""
    import yaml

    from cellprobe.errors import InputError

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(None, f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def run_and_report(cfg: BenchConfig, bench_dir: Path, report: ReportOptions | None) -> Path | None:
    """Run the matrix with a progress bar over cells; write the report when no cell failed.

    Returns the report's path (None when not asked for). Failed cells → a list on stderr and exit status 1.
    """
    import logging

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cellprobe.bench.report import build_report
    from cellprobe.bench.runner import expand, run_bench
    from cellprobe.cli.report import progress_printer

    # Lightning's per-run banners ("GPU available: …") would scroll the progress display away
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task("cells", total=len(list(expand(cfg))))

        def on_cell(task, status: str) -> None:
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
    if summary.failed:
        for cid, err in summary.failed.items():
            console.print(f"  [red]{cid}[/red]: {err}")
        raise typer.Exit(1)
    if report is None:
        return None
    html, _ = build_report(bench_dir, options=report, progress=progress_printer())
    return html


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        config: Path = typer.Argument(..., help="Benchmark YAML (see configs/bench/)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Benchmark folder (default: 'output' of the "
                                                                  "config, else runs/bench/<name>)."),
        set_: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set seeds=[0,1]."),
        report: bool = typer.Option(True, help="Write the report when every cell is done."),
    ) -> None:
        """Train and evaluate every cell of an encoders × datasets × folds × seeds matrix; finished cells are
        skipped, so a killed run resumes where it stopped."""
        from cellprobe.bench.config import BenchConfig
        from cellprobe.bench.report import ReportOptions
        from cellprobe.config import load_config

        cfg = load_config(BenchConfig, config, parse_sets(set_)).resolve_paths(config.resolve().parent)
        bench_dir = out or cfg.output or Path("runs") / "bench" / cfg.name
        html = run_and_report(cfg, bench_dir, ReportOptions() if report else None)
        if html is not None:
            typer.echo(f"report: {html}")
