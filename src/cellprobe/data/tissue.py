"""Where the tissue is on a slide: a boolean mask at thumbnail scale, so that whole-slide inference skips glass.

Three sources, one :class:`TissueMask`:

- :func:`detect_tissue`: Otsu's threshold (or a fixed one) on the thumbnail's smoothed saturation (glass is grey, stained
  tissue coloured; black scanner borders have no saturation either) or optical density, then components and
  holes smaller than a physical area removed (sizes in mm², so the result does not depend on the thumbnail
  size). Otsu's threshold is raised to ``otsu_floor`` at least: on a slide with no tissue it would otherwise
  split the glass's noise in two.
- :func:`mask_from_geojson`: QuPath annotations (level-0 coordinates) rasterised.
- :func:`mask_from_png`: a mask image covering the whole slide (non-zero = tissue).

A mask with no tissue is an error naming the slide or the mask file, never an empty run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from cellprobe.config import StrictModel, key_error, read_json
from cellprobe.data.io import read_label_image, require_file
from cellprobe.data.slide_reader import SlideReader
from cellprobe.errors import InputError

UM_PER_MM = 1000.0
#: Fractional bits of polygon vertices handed to cv2.fillPoly (sub-pixel placement at mask scale).
POLYGON_SHIFT = 4
#: A mask image's height may differ from the slide's aspect ratio by this much (relative) or one pixel.
ASPECT_TOLERANCE = 0.01
_MIN_RING_POINTS = 3
#: the largest value of each tissue channel: saturation is in [0, 1]; optical density, the mean over RGB of
#: -log10((v + 1) / 256), is at most log10(256) (black)
CHANNEL_MAX = {"saturation": 1.0, "od": float(np.log10(256.0))}


class TissueSettings(StrictModel):
    """How the tissue mask is found (``method``) and cleaned; areas in mm² of slide."""

    method: Literal["otsu", "threshold", "all"] = "otsu"
    channel: Literal["saturation", "od"] = "saturation"  # saturation in [0, 1]; optical density (mean of RGB)
    threshold: float | None = Field(None, ge=0)  # method "threshold": tissue where channel > threshold
    otsu_floor: float = Field(0.05, ge=0)  # method "otsu": the threshold is at least this
    smoothing_um: float = Field(8.0, ge=0, le=100)  # Gaussian sigma (µm) on the channel first: pale cells and lumens
    thumbnail_side: int = Field(2048, ge=64, le=16384)  # longest side of the thumbnail the mask is computed on
    min_tissue_mm2: float = Field(0.002, ge=0)  # smaller tissue components are dropped (dust, debris)
    max_hole_mm2: float = Field(0.002, ge=0)  # smaller holes in tissue are filled

    @model_validator(mode="after")
    def _threshold_with_method(self) -> TissueSettings:
        if self.method == "threshold" and self.threshold is None:
            raise ValueError("method 'threshold' needs a threshold value")
        if self.method != "threshold" and self.threshold is not None:
            raise ValueError(f"threshold is used only by method 'threshold' (method is '{self.method}')")
        top = CHANNEL_MAX[self.channel]
        if self.threshold is not None and self.threshold >= top:  # tissue is where the channel exceeds it
            raise key_error(["threshold", "channel"], f"threshold {self.threshold:g} is not below the {self.channel}'s "
                                                      f"largest value ({top:.3g}): no pixel could be tissue")
        unused = {"all": ("channel", "otsu_floor", "smoothing_um", "min_tissue_mm2", "max_hole_mm2", "thumbnail_side"),
                  "threshold": ("otsu_floor",)}.get(self.method, ())
        changed = self.non_default(*unused) if unused else []
        if changed:  # settings the method does not use would change nothing: refused, not ignored
            raise key_error([changed[0], "method"], f"{', '.join(changed)} {'is' if len(changed) == 1 else 'are'} not "
                                                    f"used by method '{self.method}'")
        return self


#: the widest tissue smoothing in thumbnail pixels (a small image's thumbnail is at full resolution, where
#: smoothing_um is many pixels): OpenCV's Gaussian blur of a 2048² thumbnail takes seconds at 256 px and
#: crashes the process by 8000
MAX_SMOOTHING_PX = 256


@dataclass
class TissueMask:
    """``mask`` (bool, thumbnail scale) and ``downsample``: level-0 pixels per mask pixel."""

    mask: np.ndarray
    downsample: float

    def _box(self, x0: float, y0: float, width: float, height: float) -> tuple[slice, slice]:
        """Mask pixels (each covering level-0 [j·d, (j+1)·d)) that the level-0 box overlaps."""
        rows, cols = self.mask.shape
        d = self.downsample
        c0, c1 = max(0, math.floor(x0 / d)), min(cols, math.ceil((x0 + width) / d))
        r0, r1 = max(0, math.floor(y0 / d)), min(rows, math.ceil((y0 + height) / d))
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))

    def touches(self, x0: float, y0: float, width: float, height: float) -> bool:
        """Whether any tissue lies in the level-0 box."""
        return bool(self.mask[self._box(x0, y0, width, height)].any())

    def covers(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether each level-0 point lies on tissue (a mask pixel covers level-0 [j·d, (j+1)·d)); points off
        the mask are not."""
        rows, cols = self.mask.shape
        r = np.floor(np.asarray(y, np.float64) / self.downsample)
        c = np.floor(np.asarray(x, np.float64) / self.downsample)
        inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        out = np.zeros(inside.shape, bool)
        out[inside] = self.mask[r[inside].astype(np.int64), c[inside].astype(np.int64)]
        return out

    def fraction(self, x0: float, y0: float, width: float, height: float) -> float:
        """Share of the level-0 box's mask pixels that are tissue (0 outside the slide)."""
        part = self.mask[self._box(x0, y0, width, height)]
        return float(part.mean()) if part.size else 0.0

    def area_mm2(self, mpp: float) -> float:
        """Tissue area in mm², for level-0 µm/px ``mpp``."""
        return float(np.count_nonzero(self.mask)) * (self.downsample * mpp / UM_PER_MM) ** 2


def mask_shape(reader: SlideReader, downsample: float) -> tuple[int, int]:
    """(rows, cols) of a mask of the whole slide at ``downsample`` level-0 px per mask px."""
    if not math.isfinite(downsample) or downsample <= 0:
        raise ValueError(f"downsample must be a finite number > 0, got {downsample}")
    base = reader.levels[0]
    return max(1, round(base.height / downsample)), max(1, round(base.width / downsample))


# --- detection -----------------------------------------------------------------------------------------------

def _channel(rgb: np.ndarray, channel: str) -> np.ndarray:
    import cv2

    if channel == "saturation":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) / 255.0
    density = -np.log10((rgb.astype(np.float32) + 1.0) / 256.0)  # 0 for white, CHANNEL_MAX["od"] for black
    return density.mean(axis=2)


def _drop_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    """``mask`` without its 8-connected components of fewer than ``min_area`` pixels. By hand rather than
    skimage's remove_small_objects, whose size parameter changed name and meaning in 0.26 (the project allows
    0.22 on)."""
    import cv2

    if min_area <= 1:
        return mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # the background label
    return keep[labels] if count > 1 else mask


def clean_mask(mask: np.ndarray, min_tissue_px: float, max_hole_px: float) -> np.ndarray:
    """Small components removed, then small holes (components of the background) filled."""
    tissue = _drop_small(mask, min_tissue_px)
    return ~_drop_small(~tissue, max_hole_px + 1)


def detect_tissue(reader: SlideReader, settings: TissueSettings) -> TissueMask:
    """The tissue of ``reader``'s slide from its thumbnail (see the module docstring)."""
    import cv2
    from skimage.filters import threshold_otsu

    thumb, downsample = reader.thumbnail(settings.thumbnail_side)
    if settings.method == "all":
        return TissueMask(np.ones(thumb.shape[:2], bool), downsample)
    um_per_px = downsample * reader.mpp
    values = _channel(thumb, settings.channel)
    if settings.smoothing_um > 0:  # texture inside tissue (pale nuclei, lumens) would fall below the cut
        sigma = settings.smoothing_um / um_per_px
        if sigma > MAX_SMOOTHING_PX:  # OpenCV's blur slows to minutes past it, and crashes further on
            raise InputError(reader.path, f"tissue.smoothing_um {settings.smoothing_um:g} µm is {sigma:.0f} px of "
                                          f"its thumbnail ({um_per_px:.3g} µm/px), over {MAX_SMOOTHING_PX} px: lower "
                                          "tissue.smoothing_um")
        values = cv2.GaussianBlur(values, (0, 0), sigma)
    if settings.method == "threshold":
        assert settings.threshold is not None  # checked by TissueSettings
        cut, how = settings.threshold, f"threshold {settings.threshold:g}"
    else:
        cut = max(float(threshold_otsu(values)), settings.otsu_floor)
        how = f"Otsu threshold {cut:.3g}"
    mm2_per_px = (um_per_px / UM_PER_MM) ** 2
    mask = clean_mask(values > cut, settings.min_tissue_mm2 / mm2_per_px, settings.max_hole_mm2 / mm2_per_px)
    if not mask.any():
        raise InputError(reader.path, f"no tissue found ({how} on {settings.channel}, components of at least "
                                      f"{settings.min_tissue_mm2:g} mm²): give a tissue mask or method 'all'")
    return TissueMask(mask, downsample)


# --- masks from files ----------------------------------------------------------------------------------------

def mask_from_png(path: Path, reader: SlideReader, downsample: float) -> TissueMask:
    """A mask image (one channel, or RGB(A) in grey; non-zero = tissue) covering the whole slide, resized (nearest) to
    ``downsample``; its aspect ratio must be the slide's."""
    import cv2

    path = Path(path)
    pixels = read_label_image(path, "tissue mask", grey_rgb=True) != 0
    if not pixels.any():
        raise InputError(path, "mask is empty (no non-zero pixel)")
    base = reader.levels[0]
    rows, cols = pixels.shape
    expected = cols * base.height / base.width
    if abs(rows - expected) > max(1.0, ASPECT_TOLERANCE * expected):
        raise InputError(path, f"mask is {cols}×{rows} px, not the aspect ratio of the slide {reader.path.name} "
                               f"({base.width}×{base.height} px; expected {cols}×{round(expected)})")
    shape = mask_shape(reader, downsample)
    mask = cv2.resize(pixels.astype(np.uint8), shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    if not mask.any():
        raise InputError(path, f"mask is empty once resized to {shape[1]}×{shape[0]} (downsample {downsample:g})")
    return TissueMask(mask, downsample)


def mask_from_geojson(path: Path, reader: SlideReader, downsample: float) -> TissueMask:
    """QuPath annotations (a Feature, a FeatureCollection or a list of Features; Polygon and MultiPolygon with
    holes, level-0 pixel coordinates) rasterised at ``downsample``: the union of the polygons, less their holes."""
    import cv2

    path = Path(path)
    polygons = _read_polygons(path)
    if not polygons:
        raise InputError(path, "mask is empty (no Polygon or MultiPolygon feature)")
    _refuse_far(path, reader, polygons)
    shape = mask_shape(reader, downsample)
    mask = np.zeros(shape, np.uint8)
    scale = 2**POLYGON_SHIFT
    for rings in polygons:  # one call per polygon: fillPoly's even-odd rule cuts its holes, not other polygons
        # mask pixel j covers level-0 [j·d, (j+1)·d): its centre, cv2's integer j, is level-0 (j + 0.5)·d
        points = [np.round((ring / downsample - 0.5) * scale).astype(np.int32) for ring in rings]
        cv2.fillPoly(mask, points, 1, lineType=cv2.LINE_8, shift=POLYGON_SHIFT)
    if not mask.any():
        _refuse_outside(path, reader, polygons)
        raise InputError(path, f"mask is empty: the polygons are smaller than one mask pixel ({downsample:g} px)")
    return TissueMask(mask.astype(bool), downsample)


#: how far beyond the slide (in slide sizes) an annotation's vertex may lie: a polygon drawn over the slide's
#: edge is fine, a coordinate of 1e300 is not a level-0 pixel (and would overflow the rasteriser)
FAR_BEYOND_SLIDE = 10.0


def _refuse_far(path: Path, reader: SlideReader, polygons: list[list[np.ndarray]]) -> None:
    points = np.concatenate([ring for rings in polygons for ring in rings])
    base = reader.levels[0]
    limit = np.array([base.width, base.height]) * (1 + FAR_BEYOND_SLIDE)
    far = np.abs(points) > limit
    if far.any():
        x, y = points[far.any(axis=1)][0]
        raise InputError(path, f"vertex ({x:g}, {y:g}) lies far beyond the slide {reader.path.name} ({base.width}×"
                               f"{base.height} px at level 0): annotations are in level-0 pixels")


def _refuse_outside(path: Path, reader: SlideReader, polygons: list[list[np.ndarray]]) -> None:
    points = np.concatenate([ring for rings in polygons for ring in rings])
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    base = reader.levels[0]
    if x1 < 0 or y1 < 0 or x0 >= base.width or y0 >= base.height:
        raise InputError(path, f"annotations (x {x0:g}–{x1:g}, y {y0:g}–{y1:g}) do not overlap the slide "
                               f"{reader.path.name} ({base.width}×{base.height} px at level 0)")


def _read_polygons(path: Path) -> list[list[np.ndarray]]:
    """Each polygon as its rings ((n, 2) float arrays, exterior first), from every feature of the file."""
    require_file(path, "annotation file")
    data = read_json(path, "annotations")
    polygons: list[list[np.ndarray]] = []
    for index, feature in enumerate(_features(path, data)):
        try:
            polygons.extend(_feature_polygons(feature))
        except ValueError as exc:
            raise InputError(path, f"feature {index}: {exc}") from None
    return polygons


def _features(path: Path, data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and data.get("type") == "Feature":
        return [data]
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if isinstance(features, list):
            return features
        raise InputError(path, "FeatureCollection without a 'features' list")
    if isinstance(data, dict) and data.get("type") in _GEOMETRIES:  # a bare geometry is GeoJSON too (RFC 7946)
        return [{"type": "Feature", "geometry": data}]
    found = data.get("type") if isinstance(data, dict) else type(data).__name__
    raise InputError(path, f"expected a GeoJSON Feature, FeatureCollection, geometry or list of features, got "
                           f"{found!r}")


#: GeoJSON's geometry types: a file of one is read as one feature (only areas are then taken)
_GEOMETRIES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
               "GeometryCollection")


def _feature_polygons(feature: Any) -> list[list[np.ndarray]]:
    """The polygons of one feature; anything that is not an area is refused (a ValueError saying why)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ValueError("not a GeoJSON Feature")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict):
        raise ValueError("has no geometry")
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        return [_rings(coordinates)]
    if kind == "MultiPolygon" and isinstance(coordinates, list):
        return [_rings(polygon) for polygon in coordinates]
    raise ValueError(f"geometry {kind!r} is not an area (Polygon or MultiPolygon)")


def _rings(coordinates: Any) -> list[np.ndarray]:
    if not isinstance(coordinates, list) or not coordinates:
        raise ValueError("polygon has no rings")
    rings = []
    for ring in coordinates:
        if not isinstance(ring, list) or len(ring) < _MIN_RING_POINTS or not all(_is_point(p) for p in ring):
            raise ValueError(f"polygon ring is not a list of at least {_MIN_RING_POINTS} [x, y] points of "
                             "finite numbers")
        rings.append(np.array([p[:2] for p in ring], dtype=np.float64))
    return rings


def _is_point(point: Any) -> bool:
    """[x, y] (a third coordinate allowed) of finite numbers; a string or boolean is not a number."""
    return (isinstance(point, list) and len(point) >= 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in point[:2]))
