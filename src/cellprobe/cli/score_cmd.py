"""``cellprobe score``: official metrics of predicted instance/class maps against the truth.

``--format conic``: two .npy files of (N, H, W, 2) labels (instance id, class id), the CoNIC release layout.
``--format pannuke``: two folders holding masks.npy (N, H, W, C+1); the truth folder also holds types.npy.
A table goes to stdout; ``--json`` and ``--per-image`` write the summary and the per-image statistics.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from cellprobe.cli.options import Overwrite, check_output_files
from cellprobe.errors import InputError
from cellprobe.machine import usable_cores


class ScoreFormat(StrEnum):
    conic = "conic"
    pannuke = "pannuke"


def _class_names(classes: str | None) -> list[str] | None:
    if classes is None:
        return None
    from cellprobe.data.info import class_names_problem

    names = [name.strip() for name in classes.split(",")]
    if not all(names):
        raise InputError(None, f"--classes: empty class name in {classes!r}")
    problem = class_names_problem(names)  # the one rule for class lists
    if problem is not None:
        raise InputError(None, f"--classes: {problem}")
    return names


def _folder_file(folder: Path, name: str, what: str) -> Path:
    if not folder.is_dir():
        raise InputError(folder, f"{what}: expected a folder holding {name} (--format pannuke)")
    return folder / name


def _score_conic(true: Path, pred: Path, names, radius, mpp, r2_crop, workers):
    from cellprobe.metrics import score_conic
    from cellprobe.metrics.inputs import load_npy

    true_arr = load_npy(true, "truth labels")
    pred_arr = load_npy(pred, "predicted labels")
    _refuse_self_scoring(true, pred, len(true_arr))
    return score_conic(true_arr, pred_arr, radius=radius, mpp=mpp, r2_crop=r2_crop, class_names=names,
                       workers=workers, sources=(str(true), str(pred)))


def _refuse_self_scoring(true: Path, pred: Path, n_images: int) -> None:
    """The --true file given as --pred too (or a link to it): a slip that would score PQ 1.0 (checked once both
    read as arrays, so a file's own problem is named first)."""
    if n_images and true.samefile(pred):
        raise InputError(pred, f"is the --true file ({true}): the truth would be scored against itself")


def _score_pannuke(true: Path, pred: Path, names, workers):
    from cellprobe.metrics import score_pannuke
    from cellprobe.metrics.inputs import load_npy, load_types

    true_path = _folder_file(true, "masks.npy", "truth")
    pred_path = _folder_file(pred, "masks.npy", "prediction")
    true_arr = load_npy(true_path, "truth masks")
    pred_arr = load_npy(pred_path, "predicted masks")
    _refuse_self_scoring(true_path, pred_path, len(true_arr))
    types = load_types(true / "types.npy", true_arr.shape[0])
    return score_pannuke(true_arr, pred_arr, types.tolist(), class_names=names, workers=workers,
                         sources=(str(true_path), str(pred_path)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if value != value else f"{value:.4f}"
    return str(value)


def _print_conic(summary: dict[str, Any], radius: float) -> None:
    from rich.console import Console
    from rich.table import Table

    main = Table(title=f"CoNIC-format metrics ({summary['num_images']} images)")
    main.add_column("metric")
    main.add_column("value", justify="right")
    rows = [
        ("PQ (binary, mean over images)", "pq"), ("DQ", "dq"), ("SQ", "sq"), ("mPQ+ (pooled per class)", "mpq_plus"),
        (f"R² (counts in {summary['r2_region']})", "r2"), (f"F1 detection (radius {radius:g} px)", "f1_detection"),
        ("precision detection", "precision_detection"), ("recall detection", "recall_detection"),
        ("type accuracy (paired)", "accuracy_type"), ("AJI", "aji"), ("AJI+", "aji_plus"), ("Dice (DICE1)", "dice"),
        ("DICE2", "dice2"),
    ]  # fmt: skip
    for label, key in rows:
        main.add_row(label, _fmt(summary[key]))
    per_class = Table(title="per class")
    for col in ("class", "PQ (pooled)", "F1", "R²"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for k, name in enumerate(summary["class_names"]):
        per_class.add_row(f"{k + 1} {name}", _fmt(summary["pq_per_class"][k]), _fmt(summary["f1_per_class"][k]),
                          _fmt(summary["r2_per_class"][k]))
    console = Console()
    console.print(main)
    console.print(per_class)


def _print_pannuke(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    main = Table(title=f"PanNuke-format metrics ({summary['num_images']} images)")
    main.add_column("metric")
    main.add_column("value", justify="right")
    for label, key in (("bPQ (official: mean over tissues)", "bpq"), ("mPQ (official: mean over tissues)", "mpq"),
                       ("bPQ (mean over images)", "bpq_image"), ("mPQ (mean over images)", "mpq_image")):
        main.add_row(label, _fmt(summary[key]))
    per_class = Table(title="PQ per class (mean over images)")
    per_class.add_column("class")
    per_class.add_column("PQ", justify="right")
    for k, name in enumerate(summary["class_names"]):
        per_class.add_row(f"{k + 1} {name}", _fmt(summary["pq_per_class"][k]))
    tissues = Table(title="per tissue")
    for col in ("tissue", "images", "bPQ", "mPQ"):
        tissues.add_column(col, justify="left" if col == "tissue" else "right")
    for name, values in summary["per_tissue"].items():
        tissues.add_row(name, str(values["num_images"]), _fmt(values["bpq"]), _fmt(values["mpq"]))
    console = Console()
    for table in (main, per_class, tissues):
        console.print(table)


def _write(result, json_out: Path | None, per_image: Path | None, inputs: dict[str, str]) -> None:
    from cellprobe import atomic

    for target, write in (
        (json_out, lambda: atomic.write_json(json_out, {**result.to_dict(), "inputs": inputs})),
        (per_image, lambda: result.write(csv_path=per_image)),
    ):
        if target is None:
            continue
        try:
            write()
        except OSError as exc:
            raise InputError(target, f"cannot write ({exc.strerror or exc})") from None


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score(
        fmt: ScoreFormat = typer.Option(..., "--format", help="conic: (N,H,W,2) labels .npy files; pannuke: "
                                        "folders with masks.npy (the truth's also with types.npy)."),
        true: Path = typer.Option(..., "--true", help="Ground truth (.npy file or folder, see --format)."),
        pred: Path = typer.Option(..., "--pred", help="Predictions, same layout as --true."),
        classes: str | None = typer.Option(None, "--classes", help="Comma-separated class names in class-id "
                                           "order (default: class1..classN, N = the largest class id in the truth (PanNuke: its five "
                                           "names); predictions may not use more)."),
        radius: float | None = typer.Option(None, "--radius", help="Detection pairing radius in px "
                                            "(default: 3 µm, i.e. 12 px at 40× / 6 px at 20×; see --mpp)."),
        mpp: float | None = typer.Option(None, "--mpp", help="µm per pixel of the data, sets the default "
                                         "radius (default 0.25: 40×; CoNIC is 0.5)."),
        r2_crop: int | None = typer.Option(None, "--r2-crop", help="Count nuclei for R² in the central "
                                           "crop of this size (CoNIC challenge: 224); default whole patch."),
        workers: int = typer.Option(1, "--workers", help="Processes; 0 = all cores."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the summary as JSON."),
        per_image: Path | None = typer.Option(None, "--per-image", help="Write per-image statistics as CSV."),
        overwrite: Overwrite = False,
    ) -> None:
        """Score predictions with the official PanNuke / CoNIC / HoVer-Net metric definitions."""
        read = [true, pred] if fmt is ScoreFormat.conic else [true / "masks.npy", true / "types.npy", pred / "masks.npy"]
        check_output_files([json_out, per_image], read, overwrite)  # the files read, not PanNuke's folders
        names = _class_names(classes)
        for flag, value in (("--radius", radius), ("--mpp", mpp), ("--r2-crop", r2_crop)):
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise InputError(None, f"{flag} must be a finite number > 0, got {value}")
            if value is not None and fmt is ScoreFormat.pannuke:
                raise InputError(None, f"{flag} applies to --format conic only")
        if radius is not None and mpp is not None:  # a setting that changes nothing is refused, not ignored
            raise InputError(None, "--mpp sets the default --radius only (3 µm at that µm/px); beside --radius it "
                                   "would change nothing: give one of them")
        if workers < 0:
            raise InputError(None, f"--workers must be >= 0 (0 = all cores), got {workers}")
        if workers > usable_cores():  # as slide's --workers: the rest would only wait, each holding images
            raise InputError(None, f"--workers {workers}: {usable_cores()} core(s) usable here; give at most "
                                   f"{usable_cores()} (0 = all of them)")
        if fmt is ScoreFormat.conic:
            from cellprobe.metrics.score import say_empty_classes

            result = _score_conic(true, pred, names, radius, mpp, r2_crop, workers)
            say_empty_classes(result)
            _print_conic(result.summary, result.params["radius"])
        else:
            result = _score_pannuke(true, pred, names, workers)
            _print_pannuke(result.summary)
        _write(result, json_out, per_image, {"true": str(true), "pred": str(pred), "format": fmt.value})
