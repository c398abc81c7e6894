"""``cellprobe report BENCH_DIR``: the HTML page and Markdown summary of a benchmark folder."""

from __future__ import annotations

from pathlib import Path

import typer

from cellprobe.cli.options import Overwrite


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        bench_dir: Path = typer.Argument(..., help="A benchmark folder written by `cellprobe bench`."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Where to write report.html/report.md "
                                                                  "(default: the benchmark folder)."),
        n_boot: int = typer.Option(1000, help="Bootstrap resamples of images (confidence intervals)."),
        n_perm: int = typer.Option(1000, help="Sign-flip permutations (p-values)."),
        seed: int = typer.Option(0, help="Seed of the resampling."),
        min_units: int = typer.Option(10, help="Fewer independent units (source images) than this: CIs marked "
                                               "unreliable, no p-values, no winner shaded."),
        overwrite: Overwrite = False,
    ) -> None:
        """Leaderboards with 95% bootstrap CIs and paired permutation tests, plots, critical-difference
        diagram and example patches, as one self-contained HTML page plus a Markdown summary."""
        from cellprobe.bench.report import ReportOptions, build_report
        from cellprobe.cli.progress_bars import report_progress
        from cellprobe.config import parse_config

        given = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "min_units": min_units}
        options = parse_config(ReportOptions, given, "options",
                               {key: "--" + key.replace("_", "-") for key in given})
        html, md = build_report(bench_dir, out, options, progress=report_progress(), overwrite=overwrite)
        typer.echo(f"report: {html}\nsummary: {md}")

