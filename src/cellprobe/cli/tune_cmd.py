"""``cellprobe tune``: fit a run's post-processing thresholds on its validation patches."""

from __future__ import annotations

from pathlib import Path

import typer

from cellprobe.cli.options import TTA, Checkpoint, Device, Overwrite


def register(app: typer.Typer) -> None:
    @app.command("tune")
    def tune_cmd(
        run: Path = typer.Argument(..., help="Run folder (from `cellprobe train`)."),
        data: Path | None = typer.Option(None, "--data", "-d", help="Tune on this dataset instead of the run's "
                                                                    "validation patches."),
        split: str | None = typer.Option(None, "--split", help="Split of --data."),
        metric: str = typer.Option("pq", help="Summary metric to maximise (pq, mpq_plus, aji, ...)."),
        search: str = typer.Option("coordinate", help="coordinate (default: one parameter at a time from the "
                                                       "untuned thresholds, each kept where no value of its list "
                                                       "scores higher) or grid (every combination)."),
        checkpoint: Checkpoint = "best",
        device: Device = None,
        tta: TTA = 1,
        grid: Path | None = typer.Option(None, "--grid", help="YAML mapping of post-processing parameter to the "
                                                              "values to search (default: the built-in grid)."),
        overwrite: Overwrite = False,
    ) -> None:
        """Search the watershed thresholds from the run's untuned ones and save them in its postprocess.json
        (thresholds already there are replaced only with --overwrite)."""
        from cellprobe.evaluation.tune import load_grid, tune

        params = tune(run, data, split, metric=metric, search=search, checkpoint=checkpoint, device=device,
                      tta=tta, grid=None if grid is None else load_grid(grid), overwrite=overwrite,
                      given={"metric": "--metric", "search": "--search", "grid": grid or "--search"})
        typer.echo(f"wrote {run / 'postprocess.json'}: {params.model_dump_json()}")
