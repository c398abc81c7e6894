"""Predict on image files of any size: instance and class maps, overlay PNG and GeoJSON per image."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from cellprobe.errors import InputError
from cellprobe.inference.export import prediction_paths, write_prediction
from cellprobe.inference.segmenter import Segmenter


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Image files named directly or found (not recursively) in named folders; in a stable order."""
    from cellprobe.data.io import IMAGE_SUFFIXES

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise InputError(item, f"folder holds no image ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(item, "no such file or folder")
    stems = [p.stem for p in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(None, f"several inputs share the name '{dupes[0]}'; their outputs would overwrite "
                               "each other")
    return files


def output_names(stem: str) -> list[str]:
    """The files :func:`~cellprobe.inference.export.write_prediction` writes for an input named ``stem``."""
    return [p.name for p in prediction_paths(Path("."), stem).values()]


def prepare_output(out_dir: Path, files: Sequence[Path], overwrite: bool = False) -> None:
    """Check ``out_dir`` before any image is segmented: it must be (or become) a folder, and it must not hold
    results for these inputs unless ``overwrite``. Temporary files a killed run left there are removed."""
    for parent in (out_dir, *out_dir.parents):
        if parent.exists() and not parent.is_dir():
            raise InputError(parent, "--out must be a folder, and this is a file")
        if parent.exists():
            break
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out_dir, f"cannot create the output folder ({exc.strerror or exc})") from None
    for name in (n for f in files for n in output_names(f.stem)):
        for stale in out_dir.glob(f".{name}.*.tmp"):  # an atomic write that a kill interrupted
            stale.unlink(missing_ok=True)
    if not overwrite:
        existing = [out_dir / n for f in files for n in output_names(f.stem) if (out_dir / n).exists()]
        if existing:
            raise InputError(existing[0], f"already holds results ({len(existing)} file(s) of these inputs in "
                                          f"{out_dir}); pass --overwrite to replace them")


def predict_files(segmenter: Segmenter, files: Sequence[Path], out_dir: Path,
                  progress: Callable[[Path], None] | None = None, overwrite: bool = False) -> list[dict[str, Path]]:
    """Segment each file and write its outputs to ``out_dir``; returns the paths written per file."""
    from cellprobe.data.io import read_image

    prepare_output(out_dir, files, overwrite)
    written = []
    for path in files:
        image = read_image(path)
        inst, cls_map, types = segmenter.segment(image)
        written.append(write_prediction(out_dir, path.stem, image, inst, cls_map, types, segmenter.class_names))
        if progress is not None:
            progress(path)
    return written
