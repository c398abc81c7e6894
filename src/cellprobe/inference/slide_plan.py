"""What a slide's run will do, worked out (and every input checked) before anything is created: the slide's
and the target µm/px, the pyramid level read, the tile grid, the tiles that touch tissue, and the stamp that
partial and finished results carry.

:func:`plan_slide` needs the run folder only (not its network), so a command checks every slide before it
loads a model.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellprobe.errors import InputError, not_a_file
from cellprobe.inference.slide_config import SlideSettings
from cellprobe.inference.slide_tiles import TileGrid, make_grid
from cellprobe.inference.slide_windows import WindowPlan
from cellprobe.inference.window import WindowConfig
from cellprobe.run.run_folder import Run

#: suffixes stripped from a slide's file name to name its output folder (longest first)
SLIDE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".svs", ".ndpi", ".scn", ".mrxs", ".vms", ".bif",
                  ".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class SlideInputs:
    """Per-slide inputs besides the file: ``mpp`` overrides the slide's metadata; ``target_mpp`` the run's
    µm/px; ``region`` (x, y, width, height in level-0 px) limits the work; ``tissue_mask``: a QuPath GeoJSON
    annotation file or a PNG instead of detecting tissue; ``mpp_source``: where ``mpp`` came from, as
    summary.json records it (None: the user's --mpp)."""

    mpp: float | None = None
    target_mpp: float | None = None
    region: tuple[int, int, int, int] | None = None
    tissue_mask: Path | None = None
    mpp_source: str | None = None


@dataclass
class SlidePlan:
    name: str
    path: Path
    reader: Any
    target_mpp: float
    run_mpp: float | None
    scale: float
    level: int
    grid: TileGrid
    windows: WindowPlan
    todo: list[int]
    tissue_mm2: float
    tissue: Any = None  # the TissueMask
    stamp: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.reader.close()


def slide_name(path: Path) -> str:
    name = path.name
    for suffix in SLIDE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem or name


def target_resolution(reader: Any, run: Run, settings: SlideSettings, inputs: SlideInputs) -> float:
    """The µm/px the network sees: the run's (its training data's), ``--target-mpp``, or with resampling
    disabled the slide's own (refused when it is too far from the run's)."""
    run_mpp = inputs.target_mpp if inputs.target_mpp is not None else run.stamp.mpp
    if run_mpp is None:
        raise InputError(run.path / "run.json", "records no µm/px of the run's training data; pass --target-mpp")
    if not (math.isfinite(run_mpp) and run_mpp > 0):
        raise InputError("--target-mpp", f"must be a finite number > 0, got {run_mpp!r}")
    if settings.resample:
        factor = reader.mpp / run_mpp
        if not 1 / settings.max_resample <= factor <= settings.max_resample:
            how = f"enlarged {factor:.3g}×" if factor > 1 else f"shrunk {1 / factor:.3g}×"
            raise InputError(reader.path, f"at {reader.mpp:.4g} µm/px ({reader.mpp_source}) it would be {how} to "
                                          f"reach {run_mpp:.4g} µm/px, beyond max_resample "
                                          f"({settings.max_resample:g}×); check --mpp / --target-mpp")
        return float(run_mpp)
    if abs(reader.mpp / run_mpp - 1) > settings.mpp_tolerance:
        whose = "--target-mpp" if inputs.target_mpp is not None else "the run's"
        raise InputError(reader.path, f"{reader.mpp:.4g} µm/px is {abs(reader.mpp / run_mpp - 1):.0%} from "
                                      f"{whose} {run_mpp:.4g} µm/px (tolerance {settings.mpp_tolerance:.0%}) and "
                                      "resampling is disabled")
    return float(reader.mpp)


def _area(reader: Any, target: float, region: tuple[int, int, int, int] | None,
          window: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(origin, size) of the processed area in whole target pixels; at least one network window wide."""
    from cellprobe.data.slide_reader import slide_size_at_mpp

    width, height = reader.levels[0].width, reader.levels[0].height
    scale = target / reader.mpp
    if region is None:
        origin, size = (0, 0), slide_size_at_mpp(reader, target)
    else:
        x, y, w, h = region
        if w <= 0 or h <= 0:
            raise InputError(reader.path, f"region {x},{y},{w},{h} is empty: its width and height (the last two "
                                          "numbers) must be positive")
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise InputError(reader.path, f"region {x},{y},{w},{h} is not inside the slide ({width}×{height} px "
                                          "at level 0)")
        origin = (round(x / scale), round(y / scale))
        size = (max(1, round(w / scale)), max(1, round(h / scale)))
    if min(size) < window:  # the engine's windows lie inside the area; an image smaller than one is predict's
        side = math.ceil(window * scale)
        advice = (f"give a region of at least {side}×{side} px at level 0" if region and min(width, height) >= side
                  else "segment it as an image with `cellprobe predict` (any size, at the run's µm/px)")
        raise InputError(reader.path, f"{'region' if region else 'slide'} is {size[0]}×{size[1]} px at {target:g} "
                                      f"µm/px, smaller than one network window ({window} px): {advice}")
    return origin, size


def _tissue(reader: Any, settings: SlideSettings, mask_path: Path | None) -> Any:
    from cellprobe.data.tissue import detect_tissue, mask_from_geojson, mask_from_png

    if mask_path is None:
        return detect_tissue(reader, settings.tissue)
    problem = not_a_file(mask_path)
    if problem is not None:
        raise InputError(mask_path, f"{problem}: the tissue mask must be a GeoJSON or PNG file")
    downsample = max(reader.levels[0].width, reader.levels[0].height) / settings.tissue.thumbnail_side
    suffix = mask_path.suffix.lower()
    if suffix in (".geojson", ".json"):
        return mask_from_geojson(mask_path, reader, downsample)
    if suffix == ".png":
        return mask_from_png(mask_path, reader, downsample)
    raise InputError(mask_path, "a tissue mask must be a QuPath GeoJSON (.geojson, .json) or a PNG")


def _tissue_mm2(mask: Any, mpp: float, region: tuple[int, int, int, int] | None) -> float:
    if region is None:
        return float(mask.area_mm2(mpp))
    ds = mask.downsample
    x, y, w, h = region
    crop = mask.mask[int(y / ds):math.ceil((y + h) / ds), int(x / ds):math.ceil((x + w) / ds)]
    return float(crop.sum()) * (ds * mpp / 1000.0) ** 2


def run_identity(run: Run) -> dict[str, Any]:
    """What a slide's nuclei depend on in the run: its folder, encoder, classes and µm/px."""
    encoder = run.stamp.encoder
    return {"path": str(run.path.resolve()), "encoder": None if encoder is None else encoder.to_json(),
            "class_names": list(run.stamp.class_names), "mpp": run.stamp.mpp}


def plan_slide(path: Path, run: Run, settings: SlideSettings, inputs: SlideInputs, window: WindowConfig,
               network: dict[str, Any] | None = None, out_dir: Path | None = None) -> SlidePlan:
    """Open and check one slide; ``window``: the network's windows (the Segmenter's); ``network``: facts of
    the loaded network the results depend on (weights, test-time augmentation, post-processing thresholds),
    added to the stamp; ``out_dir``: the output folder, whose record of the slide's digest spares reading the
    whole file again (:mod:`cellprobe.inference.slide_digest`)."""
    from cellprobe.data.slide_reader import level_for_mpp, open_slide
    from cellprobe.inference.slide_digest import slide_sha256

    path = Path(path)
    reader = open_slide(path, mpp=inputs.mpp)
    if inputs.mpp_source is not None:
        reader.mpp_source = inputs.mpp_source
    try:
        target = target_resolution(reader, run, settings, inputs)
        scale = target / reader.mpp
        origin, size = _area(reader, target, inputs.region, window.tile)
        grid = make_grid(origin, size, settings.tile, settings.overlap, scale)
        mask = _tissue(reader, settings, inputs.tissue_mask)
        todo = [i for i in range(len(grid)) if mask.touches(*grid.level0_box(grid.tile_at(i)))]
        if not todo:
            where = inputs.tissue_mask or path
            problem = ("the tissue mask does not overlap the slide" if inputs.tissue_mask
                       else "no tissue found (try --set tissue.method=all, or give --tissue-mask)")
            raise InputError(where, problem + (" within the region" if inputs.region else ""))
        stamp = {
            # its bytes, whatever its path, time or inode: a rescan copied over it, or a file rewritten in place
            # with its time set back, is another slide; a touched, moved or copied file of the same bytes is the same
            "slide": {"bytes": path.stat().st_size,
                      "sha256": slide_sha256(path, slide_name(path), out_dir),
                      "level0": [reader.levels[0].width, reader.levels[0].height], "mpp": reader.mpp},
            "run": run_identity(run), "network": network or {},
            "target_mpp": target, "region": list(inputs.region) if inputs.region else None,
            "tile": settings.tile, "overlap": settings.overlap, "window": window.model_dump(mode="json"),
            "overview_side": settings.overview_side,  # a result file's size: another value is another result
            "tissue": settings.tissue.model_dump(mode="json"),
            "tissue_mask": None if inputs.tissue_mask is None else _sha256(inputs.tissue_mask),
            "nuclei": "centroid on tissue",  # those beyond it are dropped (earlier versions kept them)
            "todo": hashlib.sha256(json.dumps(todo).encode()).hexdigest(),
        }
        return SlidePlan(slide_name(path), path, reader, target, run.stamp.mpp, scale,
                         level_for_mpp(reader, target), grid, WindowPlan.of(grid, window), todo,
                         _tissue_mm2(mask, reader.mpp, inputs.region), mask, stamp)
    except BaseException:
        reader.close()
        raise


def stamp_difference(recorded: Any, stamp: dict[str, Any]) -> str:
    """Where a recorded stamp differs from this run's (the first few dotted keys), for a refusal to name."""
    from cellprobe.config import differing_keys

    keys = differing_keys(recorded, stamp) if isinstance(recorded, dict) else ["the whole stamp"]
    return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


def _sha256(path: Path) -> str:
    from cellprobe.hashing import file_sha256

    return file_sha256(path)
