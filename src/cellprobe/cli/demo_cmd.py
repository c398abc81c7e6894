"""``cellprobe demo``: the embedded default, offline: frozen EfficientNet-Lite0 (ImageNet) vs. the same network
randomly initialised on the shipped HGSC patches, then the report."""

from __future__ import annotations

from pathlib import Path

import typer

from cellprobe.cli.options import Cluster, ClusterConfig, Scheduler, Sets

# --quick: the smallest run that still goes through every step (tests, a first look)
QUICK = {"training.epochs": 1, "examples": 2}
QUICK_REPORT = {"n_boot": 100, "n_perm": 100}


def demo_config_path() -> Path:
    from importlib.resources import files

    return Path(str(files("cellprobe.resources") / "demo" / "bench.yaml"))


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path | None = typer.Option(None, "--out", "-o", help="Benchmark folder of the demo (default: "
                                                                  "runs/demo, or runs/demo-quick with --quick)."),
        quick: bool = typer.Option(False, help="Tiny settings (1 epoch, fewer resamples): checks the pipeline."),
        set_: Sets = (),
        cluster: Cluster = None,
        cluster_config: ClusterConfig = None,
        scheduler: Scheduler = None,
    ) -> None:
        """Run the demo benchmark on the data shipped with cellprobe (no download) and write the report."""
        from cellprobe.bench.bench_config import BenchConfig
        from cellprobe.bench.report import ReportOptions
        from cellprobe.cli.matrix_run import run_and_report
        from cellprobe.cli.options import cluster_spec, load_with_sets
        from cellprobe.config import parse_config

        spec = cluster_spec(cluster, cluster_config, scheduler)  # checked before any work
        path = demo_config_path()
        cfg = load_with_sets(BenchConfig, path, set_, QUICK if quick else None, owner="--quick",
                             reserved={"output": "--out"}).resolve_paths(path.parent)
        report = parse_config(ReportOptions, QUICK_REPORT if quick else {})
        out = out or Path("runs") / ("demo-quick" if quick else "demo")
        cfg.output = out  # what bench.yaml records (in place: the config remembers where each key was given)
        html = run_and_report(cfg, out, report, cluster=spec)
        typer.echo(f"The demo report is at {Path(html).resolve()}")
