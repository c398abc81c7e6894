"""``cellprobe evaluate``: score a trained run on a dataset split with the metrics engine."""

from __future__ import annotations

from pathlib import Path

import typer

from cellprobe.cli.options import TTA, Checkpoint, DatasetFormat, Device, Overwrite


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        run: Path = typer.Argument(..., help="Run folder (from `cellprobe train`)."),
        data: Path = typer.Option(..., "--data", "-d", help="Dataset folder."),
        split: str | None = typer.Option("test", "--split", help="Split to score."),
        format: DatasetFormat = None,
        checkpoint: Checkpoint = "best",
        out: Path | None = typer.Option(None, "--out", "-o", help="Folder for metrics.json and per_image.csv "
                                                                  "(default: the run folder)."),
        device: Device = None,
        tta: TTA = 1,
        overwrite: Overwrite = False,
    ) -> None:
        """Predict every patch, post-process with the run's thresholds, write metrics.json and per_image.csv."""
        from rich.console import Console
        from rich.table import Table

        from cellprobe.evaluation.evaluate import evaluate

        result = evaluate(run, data, split, checkpoint=checkpoint, out=out, device=device, format=format,
                          tta=tta, overwrite=overwrite)
        s = result.summary
        table = Table(title=f"{run} on {data} [{split}]")
        for col in ("images", "PQ", "mPQ+", "R²", "F1 det", "AJI"):
            table.add_column(col, justify="right")
        table.add_row(str(s["num_images"]), f"{s['pq']:.4f}", f"{s['mpq_plus']:.4f}", f"{s['r2']:.4f}",
                      f"{s.get('f1_detection', float('nan')):.4f}", f"{s['aji']:.4f}")
        per_class = Table(title="per class")
        for col in ("class", "PQ", "R²"):
            per_class.add_column(col, justify="right")
        for name, pq, r2 in zip(s["class_names"], s["pq_per_class"], s["r2_per_class"], strict=True):
            per_class.add_row(name, f"{pq:.4f}", f"{r2:.4f}")
        console = Console()
        console.print(table)
        scoring = result.params.get("scoring", "per class")
        if scoring == "per class":
            console.print(per_class)
        else:
            typer.echo(f"scored {scoring} (detection and segmentation only)")
        typer.echo(f"wrote {Path(out or run) / 'metrics.json'} and per_image.csv")
