"""``cellprobe refit``: retrain a finished run on all its training patches, validation ones included."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("refit")
    def refit_cmd(
        reference: Path = typer.Argument(..., help="Finished run folder whose validation chose the epochs, the "
                                                   "learning-rate drops and (tuned) postprocess.json."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder to create (or to resume)."),
        set_: list[str] = typer.Option([], "--set", help="Override a config key (runtime ones such as "
                                                         "trainer.threads, trainer.progress)."),
    ) -> None:
        """Train the reference's config on every training patch for its best epoch + 1 epochs, replaying its
        learning-rate schedule, and take over its post-processing. Running it again resumes."""
        from cellprobe.cli.bench import parse_sets
        from cellprobe.training.refit import refit
        from cellprobe.training.run import read_stamp

        run_dir = refit(reference, out, parse_sets(set_))
        if read_stamp(run_dir).status != "finished":
            typer.echo(f"cellprobe: refit {run_dir} was interrupted; run the same command to resume", err=True)
            raise typer.Exit(130)
        typer.echo(f"run: {run_dir}")
