"""``cellprobe train``: train the decoder on a frozen encoder's embeddings; re-running resumes."""

from __future__ import annotations

from pathlib import Path

import typer

from cellprobe.cli.options import DatasetFormat, Sets


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        encoder: str = typer.Option(..., "--encoder", "-e", help="Encoder name (see `cellprobe encoders`)."),
        data: Path = typer.Option(..., "--data", "-d", help="Dataset folder (any supported format)."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder to create (or to resume)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Training config YAML (e.g. "
                                                                         "configs/train/consep_efficientnet_lite0.yaml)."),
        set_: Sets = (),
        weights: str | None = typer.Option(None, help="pretrained (default), random, or a weights file."),
        format: DatasetFormat = None,
    ) -> None:
        """Train one decoder: best.ckpt, last.ckpt, config.yaml, logs in the run folder. Running the same
        command again resumes an interrupted run (or does nothing on a finished one)."""
        from cellprobe.cli.options import config_named, with_sets
        from cellprobe.encoders.registry import get_spec
        from cellprobe.errors import InputError

        try:  # named as given, before the config is read
            get_spec(encoder)
        except InputError as exc:
            raise InputError("--encoder", exc.problem) from None
        from cellprobe.config import keys_attributed
        from cellprobe.run.train_config import check_unused_settings, train_config
        from cellprobe.training.fit import train

        # stored absolute: tune, evaluate and refit of the run read the same data from any working directory
        overrides = {"encoder.name": encoder, "data.path": str(data.absolute()), "output": str(out)}
        if weights is not None:
            overrides["encoder.weights"] = (weights if weights in ("pretrained", "random")
                                            else str(Path(weights).expanduser().absolute()))
        if format is not None:
            overrides["data.format"] = format
        cfg = train_config(config if config is not None else {}, with_sets(set_, overrides, fixed=list(overrides)))
        with keys_attributed(cfg):  # named where given: the config file or the --set
            check_unused_settings(cfg)
        split_file = cfg.data.options.get("split_file")
        if isinstance(split_file, str) and not Path(split_file).expanduser().is_absolute():  # stored absolute too
            options = {**cfg.data.options, "split_file": str(Path(split_file).expanduser().absolute())}
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"options": options})})
        with config_named(config):
            run = train(cfg)

        if not run.finished:
            typer.echo(f"cellprobe: training of {run.path} was interrupted; run the same command to resume", err=True)
            raise typer.Exit(130)
        if run.stamp.info.get("time_limit_reached"):  # finished by its budget, not its epochs: said, not only kept
            typer.echo(f"warning: trainer.max_minutes ended training after {run.stamp.info.get('epochs')} of "
                       f"{run.config.epochs} epochs; the run counts as finished (run.json info.time_limit_reached)",
                       err=True)
        typer.echo(f"run: {run.path}")
