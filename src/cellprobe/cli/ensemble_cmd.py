"""``cellprobe ensemble``: several finished runs as one run folder whose maps are their average."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("ensemble")
    def ensemble_cmd(
        runs: list[Path] = typer.Argument(..., help="Finished run folders (same classes and training/validation "
                                                    "patches, e.g. seeds with the same data.split_seed)."),
        out: Path = typer.Option(..., "--out", "-o", help="Ensemble run folder to create."),
    ) -> None:
        """Make an ensemble run folder; tune, evaluate and predict then treat it as one run (maps averaged)."""
        from cellprobe.run.ensemble import make_ensemble

        path = make_ensemble(runs, out)
        typer.echo(f"ensemble of {len(runs)} runs: {path} (untuned; run `cellprobe tune {path}`)")
