"""``cellprobe predict`` on a large image: the whole-slide engine instead of whole-image maps.

Whole-image prediction keeps float maps of every pixel (~130 bytes per pixel: 2.1 GB for 4000²); the engine
keeps a few tiles' maps whatever the size. An image is large when it has more than
``SlideSettings.predict_large_pixels`` pixels. As in whole-image prediction the image is taken to be at the
run's resolution (no resampling) and every pixel is segmented (no tissue detection); its results are the engine's: ``<out>/<name>/`` with cells.parquet,
cells.geojson.gz, summary.json and overview.png.
"""

from __future__ import annotations

from pathlib import Path

from cellprobe.inference.segmenter import Segmenter
from cellprobe.inference.slide_config import SlideSettings
from cellprobe.inference.slide_engine import results_folder, run_slide, say_cut_nuclei
from cellprobe.inference.slide_outputs import CELLS, GEOJSON, OVERVIEW, SUMMARY
from cellprobe.inference.slide_plan import SlideInputs, slide_name

#: µm/px given to images of a run that records none: only the µm and µm² columns depend on it
NOMINAL_MPP = 1.0


def is_large(path: Path, settings: SlideSettings) -> bool:
    from cellprobe.data.io import image_size

    height, width = image_size(path)
    return height * width > settings.predict_large_pixels


def large_outputs(out_dir: Path, path: Path) -> dict[str, Path]:
    folder = results_folder(out_dir, slide_name(path))
    return {"cells": folder / CELLS, "geojson": folder / GEOJSON, "summary": folder / SUMMARY,
            "overview": folder / OVERVIEW}


def predict_large(segmenter: Segmenter, path: Path, out_dir: Path, settings: SlideSettings,
                  overwrite: bool = False) -> dict[str, Path]:
    """Segment a large image with the engine at its own resolution; returns the paths written."""
    mpp = segmenter.run.stamp.mpp or NOMINAL_MPP
    everything = settings.model_copy(update={"tissue": settings.tissue.model_copy(update={"method": "all"})})
    source = ("the run's (predict reads every image at it)" if segmenter.run.stamp.mpp
              else "nominal (the run records none; predict reads every image at the run's)")
    say_cut_nuclei(run_slide(segmenter, path, out_dir, everything,
                             inputs=SlideInputs(mpp=mpp, target_mpp=mpp, mpp_source=source), overwrite=overwrite))
    return large_outputs(out_dir, path)
