"""``cellprobe predict``: segment images of any size with a trained run."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        run: Path = typer.Argument(..., help="Run folder (from `cellprobe train`)."),
        inputs: list[Path] = typer.Argument(..., help="Image files or folders of images (PNG, JPEG, TIFF)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
        checkpoint: str = typer.Option("best", help="best or last."),
        tile: int = typer.Option(256, help="Sliding-window side in pixels (multiple of 32)."),
        overlap: int = typer.Option(64, help="Pixels shared by neighbouring windows."),
        device: str | None = typer.Option(None, help="cpu, cuda, ... (default: a GPU when there is one)."),
        tta: int = typer.Option(1, "--tta", min=1, max=8, help="Dihedral views averaged per patch (1: none, 8: all)."),
    ) -> None:
        """Write <name>_inst.tif, <name>_class.tif, <name>_overlay.png and <name>.geojson (QuPath) per image."""
        from rich.progress import Progress

        from cellprobe.config import parse_config
        from cellprobe.inference.predict import collect_inputs, predict_files
        from cellprobe.inference.segmenter import Segmenter
        from cellprobe.inference.window import WindowConfig

        files = collect_inputs(inputs)
        window = parse_config(WindowConfig, {"tile": tile, "overlap": overlap}, "--tile/--overlap")
        segmenter = Segmenter(run, checkpoint=checkpoint, device=device, window=window, tta=tta)
        with Progress(transient=True) as bar:
            task = bar.add_task("predicting", total=len(files))
            predict_files(segmenter, files, out, progress=lambda _p: bar.advance(task))
        typer.echo(f"wrote predictions for {len(files)} image(s) to {out}")
