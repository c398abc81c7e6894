"""``cellprobe predict``: segment images of any size with a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

from cellprobe.cli.options import TTA, Checkpoint, Device, Overwrite


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        run: Path = typer.Argument(..., help="Run folder (from `cellprobe train`)."),
        inputs: list[Path] = typer.Argument(..., help="Image files or folders of images (PNG, JPEG, TIFF)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
        checkpoint: Checkpoint = "best",
        tile: int = typer.Option(256, help="Sliding-window side in pixels (multiple of 32)."),
        overlap: int = typer.Option(64, help="Pixels shared by neighbouring windows."),
        device: Device = None,
        tta: TTA = 1,
        overwrite: Overwrite = False,
    ) -> None:
        """Write <name>_inst.tif, <name>_class.tif, <name>_overlay.png and <name>.geojson (QuPath) per image."""
        from rich.progress import Progress

        from cellprobe.config import parse_config
        from cellprobe.inference.predict import (
            check_inputs,
            collect_inputs,
            predict_files,
            prediction_setup,
            prepare_output,
        )
        from cellprobe.inference.segmenter import Segmenter, pick_device
        from cellprobe.inference.window import WindowConfig

        files = collect_inputs(inputs, notice=lambda line: typer.echo(f"cellprobe: {line}", err=True))
        window = parse_config(WindowConfig, {"tile": tile, "overlap": overlap}, "--tile/--overlap")
        # what the results depend on: a rerun with the same setup resumes, another is refused without --overwrite
        setup = prediction_setup(run, checkpoint, window, tta)
        check_inputs(files)  # before the run is loaded or anything written: a refused command costs nothing
        pick_device(device)  # likewise: the --out folder is made next
        prepare_output(out, files, overwrite, setup)
        segmenter = Segmenter(run, checkpoint=checkpoint, device=device, window=window, tta=tta)
        with Progress(transient=True) as bar:
            task = bar.add_task("predicting", total=len(files))
            predict_files(segmenter, files, out, progress=lambda _p: bar.advance(task), overwrite=overwrite,
                          setup=setup)
        typer.echo(f"wrote predictions for {len(files)} image(s) to {out}")
