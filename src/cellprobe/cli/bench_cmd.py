"""``cellprobe bench CONFIG.yaml``: run (or resume) a benchmark matrix, then write its report."""

from __future__ import annotations

from pathlib import Path

import typer

from cellprobe.cli.options import Cluster, ClusterConfig, Scheduler, Sets


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        config: Path = typer.Argument(..., help="Benchmark YAML (see configs/bench/)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Benchmark folder (default: 'output' of the "
                                                                  "config, else runs/bench/<name>)."),
        set_: Sets = (),
        report: bool = typer.Option(True, help="Write the report when every cell is done."),
        cluster: Cluster = None,
        cluster_config: ClusterConfig = None,
        scheduler: Scheduler = None,
    ) -> None:
        """Train and evaluate every cell of an encoders × datasets × folds × seeds matrix; finished cells are
        skipped, so a killed run resumes where it stopped. With --cluster or --scheduler the cells run as
        tasks of a Dask cluster."""
        from cellprobe.bench.bench_config import BenchConfig
        from cellprobe.bench.report import ReportOptions
        from cellprobe.cli.matrix_run import run_and_report
        from cellprobe.cli.options import cluster_spec, load_with_sets

        spec = cluster_spec(cluster, cluster_config, scheduler)  # checked before any work
        cfg = load_with_sets(BenchConfig, config, set_, reserved={"output": "--out"} if out else None).resolve_paths(
            config.resolve().parent)
        bench_dir = out or cfg.output or Path("runs") / "bench" / cfg.name
        # bench.yaml records where the benchmark went (the config file's output yields to --out)
        cfg.output = bench_dir  # in place: the config remembers where each key was given
        html = run_and_report(cfg, bench_dir, ReportOptions() if report else None, cluster=spec)
        if html is not None:
            typer.echo(f"report: {html}")
