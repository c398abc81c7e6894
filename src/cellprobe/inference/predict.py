"""Predict on image files of any size: instance and class maps, overlay PNG and GeoJSON per image."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from cellprobe.errors import InputError
from cellprobe.inference.export import write_prediction
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


def predict_files(segmenter: Segmenter, files: Sequence[Path], out_dir: Path,
                  progress: Callable[[Path], None] | None = None) -> list[dict[str, Path]]:
    """Segment each file and write its outputs to ``out_dir``; returns the paths written per file."""
    from cellprobe.data.io import read_image

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        image = read_image(path)
        inst, cls_map, types = segmenter.segment(image)
        written.append(write_prediction(out_dir, path.stem, image, inst, cls_map, types, segmenter.class_names))
        if progress is not None:
            progress(path)
    return written
