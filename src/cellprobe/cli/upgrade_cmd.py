"""``cellprobe upgrade RUN...``: convert run folders of an earlier run format in place."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("upgrade")
    def upgrade_cmd(
        runs: list[Path] = typer.Argument(..., help="Run folders (ensembles too) written by an earlier run format."),
    ) -> None:
        """Convert run folders written before the current run format (checkpoints rewritten atomically; a killed
        upgrade is run again). Current run folders are left as they are."""
        from cellprobe.run.upgrade import upgrade_run
        from cellprobe.training.build import training_data_facts

        for run in runs:
            done = upgrade_run(run, training_data_facts)
            typer.echo(f"{run}: " + ("already current" if not done else "; ".join(done)))
