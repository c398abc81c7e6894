"""``cellprobe refit``: retrain a finished run on all its training patches, validation ones included."""

from __future__ import annotations

from pathlib import Path

import typer

from cellprobe.cli.options import Sets


def register(app: typer.Typer) -> None:
    @app.command("refit")
    def refit_cmd(
        reference: Path = typer.Argument(..., help="Finished run folder whose validation chose the epochs, the "
                                                   "learning-rate drops and (tuned) postprocess.json."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder to create (or to resume)."),
        set_: Sets = (),
    ) -> None:
        """Train the reference's config on every training patch for its best epoch + 1 epochs, replaying its
        learning-rate schedule, and take over its post-processing. Running it again resumes."""
        from cellprobe.cli.options import parse_sets
        from cellprobe.training.refit import refit

        run = refit(reference, out, parse_sets(set_))
        if not run.finished:
            typer.echo(f"cellprobe: refit {run.path} was interrupted; run the same command to resume", err=True)
            raise typer.Exit(130)
        typer.echo(f"run: {run.path}")
