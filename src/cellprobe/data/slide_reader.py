"""Whole-slide images behind one reader, whatever the file: regions at any pyramid level or at a target µm/px.

:func:`open_slide` picks the reader from the file's content, not its name:

- ``openslide``: what ``openslide.OpenSlide.detect_format`` recognises (SVS, NDPI, MRXS, SCN, BIF, Philips,
  DICOM, generic tiled TIFF), except OME-TIFF, which OpenSlide would read as a generic TIFF without its
  SubIFD pyramid or its physical pixel size.
- ``tiff``: OME-TIFF and every other TIFF (stripped, SubIFD pyramids, and tiled ones OpenSlide's generic-TIFF
  reader cannot decode: :func:`_openslide_decodes`) via tifffile. A read decodes only the
  tiles or strips that intersect the region (tifffile's own segment reader and decoder, which its zarr store
  also uses; calling them directly spares a zarr dependency); sparse (empty) tiles read as white.
- ``image``: PNG, JPEG, BMP. These formats cannot be decoded in part, so the image is decoded whole, in memory,
  through :func:`cellprobe.data.io.read_image` (the checks of ``cellprobe predict``): at most
  :data:`~cellprobe.data.io.MAX_IMAGE_PIXELS` (8192² px, about 200 MB), its alpha channel fully opaque. That
  bounds memory; a larger image is refused with one line: convert it to a tiled pyramidal TIFF first
  (e.g. ``vips tiffsave in.png out.tif --tile --pyramid --compression jpeg``).

Regions come back as (h, w, 3) uint8 RGB; transparent pixels (alpha, MRXS gaps) are composited on white. One
read is at most ``MAX_IMAGE_PIXELS``; the thumbnail is made band by band, so no call holds a whole large level.
A slide must be 8-bit RGB (or RGB with alpha): 16-bit samples, grey and extra channels are refused
(:func:`tiff_sample_problem`), never rescaled, converted or dropped. For a TIFF this is judged from its own tags,
whichever reader it goes to: OpenSlide would turn any of them into 8-bit RGB without a word.

µm/px (:attr:`SlideReader.mpp`, level 0) comes from the ``mpp`` argument (``--mpp``; it wins), else from the file:
OpenSlide's ``openslide.mpp-x/y``; OME ``PhysicalSizeX/Y`` with their units; TIFF ``XResolution/YResolution``
with ``ResolutionUnit`` inch or centimeter (PNG/JPEG: their dpi). Resolution tags are often a writer's default
(72, 96 or 300 dpi, or 1 px per unit) rather than a measurement, so they count only when they give a µm/px in
:data:`PLAUSIBLE_TAG_MPP` (a microscope's range; 72 dpi is 353 µm/px), and ``ResolutionUnit`` none never
counts. OpenSlide derives ``openslide.mpp-x`` of a generic TIFF from those same tags, so the same rule applies
there. Unknown µm/px is an error, never a silent default, as are x and y µm/px more than
:data:`MPP_XY_TOLERANCE` apart (non-square pixels), as are OME sizes and plausible resolution tags more than
:data:`MPP_SOURCES_TOLERANCE` apart.

Every problem with the file (unreadable, truncated, unsupported, empty, not RGB) is one
:class:`~cellprobe.errors.InputError` naming it. Readers are safe to share between threads (OpenSlide is;
tifffile's file handle gets its lock).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellprobe.data.io import check_pixels, holds_tiff, read_image, require_file
from cellprobe.errors import InputError

#: x and y µm/px further apart than this (relative) are refused: pixels must be square.
MPP_XY_TOLERANCE = 0.01
#: OME PhysicalSize and plausible TIFF resolution tags further apart than this (relative) are refused: one of
#: the two is wrong, and which cannot be told (a 10 % error is a 20 % error in nucleus areas)
MPP_SOURCES_TOLERANCE = 0.1
#: A level up to this much (relative) coarser than a target µm/px still counts as fine enough for it.
LEVEL_TOLERANCE = 0.01
#: Resampling is skipped when it would move no pixel of a region by this many pixels.
SUBPIXEL = 0.5
#: µm/px range in which resolution tags (TIFF, PNG/JPEG dpi) are believed to be a physical measurement.
PLAUSIBLE_TAG_MPP = (0.05, 20.0)
#: Level pixels decoded at once while a thumbnail is made (16 Mpx: 48 MB of RGB).
THUMBNAIL_BAND_PIXELS = 16 * 1024 * 1024
WHITE = 255

_UM_PER_UNIT = {"inch": 25_400.0, "centimeter": 10_000.0}
_TIFF_UNITS = {2: "inch", 3: "centimeter"}  # ResolutionUnit tag values; 1 is "none"
_OME_UM_PER_UNIT = {"pm": 1e-6, "nm": 1e-3, "µm": 1.0, "μm": 1.0, "um": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6,
                    "Å": 1e-4}
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM")
# TIFF photometric interpretations: grey (refused), RGB, YCbCr (decoded to RGB by the JPEG codec).
_MINISWHITE, _MINISBLACK, _RGB, _YCBCR = 0, 1, 2, 6
_JPEG_COMPRESSIONS = (6, 7, 33007, 34892)
_ASSOCIATED_ALPHA = 1

MppFound = tuple[float, float, str]  # (x µm/px, y µm/px, where it came from)


@dataclass(frozen=True)
class SlideLevel:
    """One pyramid level: its size and its level-0 pixels per pixel."""

    width: int
    height: int
    downsample: float


class SlideReader(ABC):
    """A whole-slide image: pyramid levels, level-0 µm/px, and regions read in bounded memory."""

    path: Path
    kind: str
    levels: tuple[SlideLevel, ...]
    mpp: float
    mpp_source: str

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Release the file (the reader cannot read afterwards)."""

    def read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB at ``level``, top-left (x, y) in that level's pixels; every part of
        the region must lie inside the level."""
        self._check_region(level, x, y, width, height)
        return self._read(level, int(x), int(y), int(width), int(height))

    @abstractmethod
    def _read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """The checked region as RGB on white."""

    def thumbnail(self, max_side: int) -> tuple[np.ndarray, float]:
        """The slide shrunk to at most ``max_side`` px (never enlarged), and its level-0 px per thumbnail px.

        Read from the coarsest level at least as fine as the thumbnail, in bands of rows of at most
        :data:`THUMBNAIL_BAND_PIXELS`, each shrunk as it is read."""
        import cv2

        if max_side < 1:
            raise ValueError(f"max_side must be >= 1, got {max_side}")
        base = self.levels[0]
        wanted = max(1.0, max(base.width, base.height) / max_side)  # level-0 px per thumbnail px
        index = _finest_enough(self.levels, wanted)
        level = self.levels[index]
        factor = wanted / level.downsample  # level px per thumbnail px
        width, height = max(1, round(level.width / factor)), max(1, round(level.height / factor))
        out = np.empty((height, width, 3), np.uint8)
        band = max(1, THUMBNAIL_BAND_PIXELS // max(1, level.width * math.ceil(factor)))  # thumbnail rows
        for top in range(0, height, band):
            bottom = min(height, top + band)
            y0, y1 = round(top * level.height / height), round(bottom * level.height / height)
            block = self.read(index, 0, y0, level.width, max(1, y1 - y0))
            out[top:bottom] = cv2.resize(block, (width, bottom - top), interpolation=cv2.INTER_AREA)
        return out, (base.width / width + base.height / height) / 2

    def _check_region(self, level: int, x: int, y: int, width: int, height: int) -> None:
        if not 0 <= level < len(self.levels):
            raise InputError(self.path, f"level {level} does not exist (levels 0–{len(self.levels) - 1})")
        size = self.levels[level]
        if width < 1 or height < 1:
            raise InputError(self.path, f"empty region {width}×{height} requested")
        if x < 0 or y < 0 or x + width > size.width or y + height > size.height:
            raise InputError(self.path, f"region x={x} y={y} {width}×{height} lies outside level {level} "
                                        f"({size.width}×{size.height})")
        check_pixels(self.path, height, width, "region")


# --- µm/px ---------------------------------------------------------------------------------------------------

def _valid_mpp(value: float) -> bool:
    return not isinstance(value, bool) and math.isfinite(value) and value > 0


def resolution_mpp(x_per_unit: float, y_per_unit: float, unit: str) -> MppFound | str:
    """µm/px from resolution tags (pixels per ``unit``), or why they are not a physical pixel size."""
    if unit not in _UM_PER_UNIT:
        return f"resolution unit {unit!r} is not a length"
    if not (_valid_mpp(x_per_unit) and _valid_mpp(y_per_unit)):
        return f"resolution {x_per_unit}×{y_per_unit} per {unit} is not a size"
    x, y = _UM_PER_UNIT[unit] / x_per_unit, _UM_PER_UNIT[unit] / y_per_unit
    low, high = PLAUSIBLE_TAG_MPP
    if not (low <= x <= high and low <= y <= high):
        return (f"resolution {x_per_unit:g} px/{unit} = {x:.4g} µm/px is outside {low:g}–{high:g} µm/px, a "
                "writer's default rather than a measurement")
    return x, y, f"TIFF resolution tags ({unit})"


def resolve_mpp(path: Path, override: float | None, metadata: Callable[[], MppFound | str]) -> tuple[float, str]:
    """(µm/px, source): ``override`` if given, else the file's metadata, checked (known, square pixels)."""
    if override is not None:
        return float(override), "--mpp"
    found = metadata()
    if isinstance(found, str):
        raise InputError(path, "µm/px unknown: pass --mpp" + (f" ({found})" if found else ""))
    x, y, source = found
    if not (_valid_mpp(x) and _valid_mpp(y)):
        raise InputError(path, f"µm/px {x}×{y} from {source} is not a size: pass --mpp")
    if abs(x - y) > MPP_XY_TOLERANCE * max(x, y):
        raise InputError(path, f"µm/px differs in x ({x:g}) and y ({y:g}) by more than "
                               f"{MPP_XY_TOLERANCE:.0%} ({source}): non-square pixels are not supported")
    return (x + y) / 2, source


def _ome_mpp(xml: str) -> MppFound | str:
    """PhysicalSizeX/Y of the first OME image, converted to µm from their units (default µm)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        return f"unreadable OME-XML ({exc})"
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib or "PhysicalSizeY" not in pixels.attrib:
        return "OME-XML has no PhysicalSizeX/Y"
    sizes = []
    for axis in ("X", "Y"):
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        if unit not in _OME_UM_PER_UNIT:
            return f"OME PhysicalSize{axis}Unit {unit!r} is not a length"
        try:
            sizes.append(float(pixels.attrib[f"PhysicalSize{axis}"]) * _OME_UM_PER_UNIT[unit])
        except ValueError:
            return f"OME PhysicalSize{axis} {pixels.attrib[f'PhysicalSize{axis}']!r} is not a number"
    return sizes[0], sizes[1], "OME PhysicalSizeX/Y"


def _check_override(path: Path, mpp: float | None) -> None:
    if mpp is not None and not _valid_mpp(mpp):
        raise InputError(path, f"--mpp must be a finite number > 0, got {mpp!r}")


# --- pixels --------------------------------------------------------------------------------------------------

def rgb_on_white(pixels: np.ndarray, colour: int, associated: bool = False) -> np.ndarray:
    """(h, w, 3) RGB from (h, w, n) samples: ``colour`` (1 grey or 3 RGB) channels, then alpha if n > colour
    (premultiplied when ``associated``), composited on white; further samples are ignored."""
    rgb = pixels[..., :colour] if colour == 3 else np.repeat(pixels[..., :1], 3, axis=2)
    if pixels.shape[2] <= colour:
        return np.ascontiguousarray(rgb)
    alpha = pixels[..., colour : colour + 1]
    if np.all(alpha == WHITE):
        return np.ascontiguousarray(rgb)
    rgb16, alpha16 = rgb.astype(np.uint16), alpha.astype(np.uint16)
    if associated:  # colour already scaled by alpha: add the white that shows through
        return np.minimum(rgb16 + (WHITE - alpha16), WHITE).astype(np.uint8)
    return (WHITE - ((WHITE - rgb16) * alpha16 + WHITE // 2) // WHITE).astype(np.uint8)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_levels(path: Path, levels: tuple[SlideLevel, ...]) -> None:
    if not levels or levels[0].width < 1 or levels[0].height < 1:
        size = f"{levels[0].width}×{levels[0].height}" if levels else "no image"
        raise InputError(path, f"slide is empty ({size})")


# --- OpenSlide -----------------------------------------------------------------------------------------------

class OpenSlideReader(SlideReader):
    """Vendor formats through OpenSlide (regions come as non-premultiplied RGBA)."""

    kind = "openslide"

    def __init__(self, path: Path, mpp: float | None = None) -> None:
        import openslide

        self.path = Path(path)
        try:
            self._slide = openslide.OpenSlide(str(path))
        except (openslide.OpenSlideError, OSError) as exc:  # includes OpenSlideUnsupportedFormatError
            raise InputError(path, f"unreadable slide ({_first_line(exc)})") from None
        try:
            self.vendor = str(self._slide.properties.get("openslide.vendor", "unknown"))
            self.levels = tuple(SlideLevel(int(w), int(h), float(ds)) for (w, h), ds in
                                zip(self._slide.level_dimensions, self._slide.level_downsamples, strict=True))
            _check_levels(self.path, self.levels)
            problem = tiff_truncation(self.path) or tiff_levels_problem(
                self.path, [(level.width, level.height) for level in self.levels])
            if problem:
                raise InputError(self.path, problem)
            self.mpp, self.mpp_source = resolve_mpp(self.path, mpp, self._metadata_mpp)
        except BaseException:
            self._slide.close()
            raise

    def _metadata_mpp(self) -> MppFound | str:
        props = self._slide.properties
        if self.vendor == "generic-tiff":  # OpenSlide took mpp from the resolution tags: judge those instead
            return _tag_mpp(props.get("tiff.XResolution"), props.get("tiff.YResolution"),
                            props.get("tiff.ResolutionUnit", "none"))
        if "openslide.mpp-x" not in props or "openslide.mpp-y" not in props:
            return f"no openslide.mpp-x/y in the {self.vendor} metadata"
        try:
            return float(props["openslide.mpp-x"]), float(props["openslide.mpp-y"]), "openslide mpp-x/mpp-y"
        except ValueError:
            return f"openslide.mpp-x/y {props['openslide.mpp-x']!r}/{props['openslide.mpp-y']!r} are not numbers"

    def _read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        import openslide

        scale = self.levels[level].downsample  # OpenSlide places regions in level-0 coordinates
        try:
            region = self._slide.read_region((round(x * scale), round(y * scale)), level, (width, height))
        except openslide.OpenSlideError as exc:
            raise InputError(self.path, f"unreadable image data at level {level} ({_first_line(exc)})") from None
        return rgb_on_white(np.asarray(region), 3)

    def close(self) -> None:
        self._slide.close()


def _page_tags_mpp(tags: Any) -> MppFound | str:
    """µm/px from a TIFF page's resolution tags (tifffile's), or why they give none."""
    if "XResolution" not in tags or "YResolution" not in tags:
        return "no resolution tags"
    unit = _TIFF_UNITS.get(int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2, "none")
    x, y = (_rational(tags[name].value) for name in ("XResolution", "YResolution"))
    return resolution_mpp(x, y, unit)


def _header_dpi_mpp(path: Path) -> MppFound | str:
    """µm/px from a PNG, JPEG or BMP header's resolution (Pillow's dpi), or why it gives none."""
    from PIL import Image

    with Image.open(path) as img:
        dpi = img.info.get("dpi")
    if not dpi:
        return "no resolution in the image header"
    found = _tag_mpp(dpi[0], dpi[1], "inch")
    return found if isinstance(found, str) else (found[0], found[1], "image dpi")


def recorded_mpp(path: Path) -> tuple[float, float] | None:
    """The (x, y) µm/px an image file records (OME size or TIFF resolution tags, a PNG/JPEG header's dpi) where it
    is a plausible microscope's, else None; from the header only. For images whose pixels are taken at the run's
    µm/px (predict), to say when the file says otherwise."""
    try:
        if holds_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                found = _ome_mpp(tif.ome_metadata) if tif.is_ome and tif.ome_metadata else "no OME size"
                if isinstance(found, str):
                    found = _page_tags_mpp(tif.pages[0].tags)
        else:
            found = _header_dpi_mpp(path)
    except Exception:  # a header this cannot parse records nothing usable; reading the pixels says what is wrong
        return None
    return None if isinstance(found, str) else (found[0], found[1])


def _tag_mpp(x: Any, y: Any, unit: str) -> MppFound | str:
    if x is None or y is None:
        return "no resolution tags"
    try:
        return resolution_mpp(float(x), float(y), str(unit).lower())
    except ValueError:
        return f"resolution tags {x!r}/{y!r} are not numbers"


# --- tifffile ------------------------------------------------------------------------------------------------

class _Complaints(logging.Handler):
    """The warnings tifffile logs (rather than raises) about a damaged file: a bad tag, an IFD offset past the
    end (a truncated chain of pages, read as a shorter one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().strip().splitlines()[0] if record.getMessage().strip() else "")


@contextlib.contextmanager
def _tifffile_complaints() -> Iterator[_Complaints]:
    """Collect tifffile's log warnings instead of letting them reach the terminal: the InputError (or the
    reader's verdict) says it once, and a command's stderr gets no library log lines."""
    logger = logging.getLogger("tifffile")
    handler = _Complaints()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def tiff_sample_problem(key: Any, decoder: str) -> str | None:
    """Why a TIFF page (tifffile's) is not 8-bit RGB, None when it is: RGB (3 samples, or 4 with the fourth
    marked as alpha) or YCbCr that ``decoder`` turns into RGB (tifffile: JPEG-compressed; OpenSlide: any).
    16-bit samples, grey, and extra channels are refused rather than rescaled, converted or dropped, whichever
    backend would read the page (OpenSlide's generic TIFF reader does all three without a word)."""
    photometric, samples = int(key.photometric), int(key.samplesperpixel)
    extras = tuple(int(e) for e in key.extrasamples)
    if key.dtype is None or np.dtype(key.dtype) != np.uint8:
        kind = key.dtype if key.dtype is not None else f"sample format {int(key.sampleformat)}"
        return f"samples are {kind} ({key.bitspersample} bits), expected 8-bit RGB: refused rather than rescaled"
    name = _enum_name(photometric, "PHOTOMETRIC")
    if photometric == _RGB and (samples == 3 or (samples == 4 and extras[:1] in ((1,), (2,)))):
        return None
    if photometric == _YCBCR and samples == 3:
        if decoder == "openslide" or int(key.compression) in _JPEG_COMPRESSIONS:
            return None  # tifffile's JPEG decoder and OpenSlide return RGB
        return (f"YCbCr samples with compression {_enum_name(int(key.compression), 'COMPRESSION')}, which is "
                "not decoded to RGB here; expected RGB")
    if photometric == _RGB and samples > 3:
        counted = collections.Counter(_enum_name(e, "EXTRASAMPLE").lower() for e in extras)  # one line, however many
        marks = ", ".join(f"{mark} ×{n}" if n > 1 else mark for mark, n in counted.items())
        return (f"{samples} samples per pixel (RGB and {samples - 3} extra: {marks}), expected RGB (3 samples, "
                "or 4 with alpha): refused rather than dropping channels")
    if photometric in (_MINISWHITE, _MINISBLACK) and samples == 1:
        return f"1 sample per pixel (grey, photometric {name}), expected RGB: refused rather than converted"
    return (f"{samples} sample{'s' if samples != 1 else ''} per pixel (photometric {name}), expected RGB "
            "(3 samples, or 4 with alpha)")


def _enum_name(value: int, enum: str) -> str:
    import tifffile

    try:
        return str(getattr(tifffile, enum)(value).name)
    except ValueError:
        return str(value)


def tiff_levels_problem(path: Path, sizes: list[tuple[int, int]]) -> str | None:
    """Why the pages of a TIFF that OpenSlide reads as its levels (``sizes``: (width, height) of each) are not
    8-bit RGB (:func:`tiff_sample_problem`), from tifffile's view of the tags; None when they are, for a file
    that is not a TIFF (MRXS, DICOM: OpenSlide decodes those to RGB itself), or one tifffile does not parse
    (OpenSlide's verdict then stands)."""
    import tifffile

    if not holds_tiff(path):
        return None
    try:
        with _tifffile_complaints(), tifffile.TiffFile(path) as tif:
            keys = [(sizes.index(size), page) for page in tif.pages
                    if (size := (int(page.imagewidth), int(page.imagelength))) in sizes]
            problems = [(level, tiff_sample_problem(page, decoder="openslide")) for level, page in keys]
    except Exception:  # a TIFF variant tifffile does not parse
        return None
    return next((f"level {level}: {problem}" for level, problem in sorted(problems, key=lambda p: p[0])
                 if problem), None)


def tiff_truncation(path: Path) -> str | None:
    """Why a TIFF is truncated (image data past its end), from its directories alone; None when whole or not
    a TIFF tifffile parses (the format's own reader then decides)."""
    import tifffile

    if not holds_tiff(path):
        return None
    try:
        with _tifffile_complaints(), tifffile.TiffFile(path) as tif:
            return _data_past_end(tif.pages, path.stat().st_size)
    except Exception:  # a TIFF variant tifffile does not parse: leave the verdict to OpenSlide
        return None


def _data_past_end(pages: Any, size: int) -> str | None:
    """A truncated file keeps its directories (tifffile and most writers put them first) but not all the
    image data they point at: found here at open rather than as a failed read mid-slide."""
    for page in pages:
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False) if o and n]
        if ends and max(ends) > size:
            return f"truncated: image data ends at byte {max(ends):,}, past the end of the file ({size:,} bytes)"
    return None


class TiffReader(SlideReader):
    """TIFF and OME-TIFF through tifffile, decoding only the tiles or strips a region touches."""

    kind = "tiff"

    def __init__(self, path: Path, mpp: float | None = None) -> None:
        self.path = Path(path)
        with _tifffile_complaints() as complaints:
            self._open(path, mpp, complaints)

    def _open(self, path: Path, mpp: float | None, complaints: _Complaints) -> None:
        import tifffile

        try:
            self._tif = tifffile.TiffFile(path)
        except Exception as exc:  # tifffile raises many types for corrupt files
            raise InputError(path, f"unreadable TIFF ({_first_line(exc)})") from None
        try:
            self._tif.filehandle.set_lock(True)
            self._pages = self._pyramid()
            if complaints.messages:  # strict: a slide read with parts skipped would be silently wrong
                raise InputError(path, f"corrupt or truncated TIFF ({complaints.messages[0]})")
            self.levels = self._level_sizes()
            _check_levels(self.path, self.levels)
            problem = _data_past_end(self._pages, self.path.stat().st_size)
            if problem:
                raise InputError(self.path, problem)
            self.mpp, self.mpp_source = resolve_mpp(self.path, mpp, self._metadata_mpp)
        except InputError:
            self._tif.close()
            raise
        except Exception as exc:  # corrupt directories found while walking the pyramid
            self._tif.close()
            raise InputError(path, f"unreadable TIFF ({_first_line(exc)})") from None

    def _pyramid(self) -> list[Any]:
        """The page of each level of the first image series, each checked to be RGB-convertible."""
        if not self._tif.series:
            raise InputError(self.path, "TIFF holds no image")
        pages = []
        for index, level in enumerate(self._tif.series[0].levels):
            if len(level.pages) != 1:
                raise InputError(self.path, f"level {index} has {len(level.pages)} planes (shape {level.shape}, "
                                            f"axes {level.axes}); expected one RGB image")
            page = level.pages[0]
            self._check_page(index, page.keyframe)
            pages.append(page)
        return pages

    def _check_page(self, index: int, key: Any) -> None:
        if key.imagedepth != 1:
            raise InputError(self.path, f"level {index}: volumetric TIFF (depth {key.imagedepth}), expected a "
                                        "2-D image")
        problem = tiff_sample_problem(key, decoder="tifffile")
        if problem:
            raise InputError(self.path, f"level {index}: {problem}")

    def _level_sizes(self) -> tuple[SlideLevel, ...]:
        sizes = [(int(p.keyframe.imagewidth), int(p.keyframe.imagelength)) for p in self._pages]
        width0, height0 = sizes[0]
        return tuple(SlideLevel(w, h, (width0 / w + height0 / h) / 2 if w and h else 1.0) for w, h in sizes)

    def _metadata_mpp(self) -> MppFound | str:
        tagged = self._tags_mpp()
        if self._tif.is_ome and self._tif.ome_metadata:
            found = _ome_mpp(self._tif.ome_metadata)
            if not isinstance(found, str):
                if not isinstance(tagged, str) and abs(found[0] - tagged[0]) > MPP_SOURCES_TOLERANCE * max(
                        found[0], tagged[0]):  # two measurements that disagree: which is the slide's is unknown
                    raise InputError(self.path, f"its OME metadata gives {found[0]:.4g} µm/px and its TIFF resolution "
                                                f"tags {tagged[0]:.4g} µm/px: pass --mpp with the slide's own")
                return found
        if tagged == "no resolution tags" and self._tif.is_ome:
            return "no physical size in the OME metadata or resolution tags"
        return tagged

    def _tags_mpp(self) -> MppFound | str:
        return _page_tags_mpp(self._pages[0].keyframe.tags)

    def _read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        page = self._pages[level]
        key = page.keyframe
        planes, _, _, _, contig = key.shaped
        out = np.full((planes, height, width, contig), WHITE, np.uint8)  # sparse tiles stay white
        indices = _segment_indices(key, x, y, width, height)
        handle = self._tif.filehandle
        offsets = [page.dataoffsets[i] for i in indices]
        counts = [page.databytecounts[i] for i in indices]
        try:
            for data, index in handle.read_segments(offsets, counts, indices=indices, lock=handle.lock, flat=True):
                segment, (plane, _, top, left, _), _ = key.decode(data, index, jpegtables=page.jpegtables,
                                                                  jpegheader=key.jpegheader)
                if segment is not None:
                    _paste(out[plane], segment[0], top - y, left - x)
        except Exception as exc:  # corrupt or cut tile data; unsupported codecs
            raise InputError(self.path, f"unreadable image data at level {level} ({_first_line(exc)})") from None
        pixels = out[0] if planes == 1 else np.moveaxis(out[..., 0], 0, -1)
        return rgb_on_white(pixels, 3, associated=_ASSOCIATED_ALPHA in tuple(key.extrasamples))

    def close(self) -> None:
        self._tif.close()


def _rational(value: Any) -> float:
    """A TIFF RATIONAL tag value ((numerator, denominator) in tifffile) as a float; 0 when undefined."""
    if isinstance(value, tuple):
        numerator, denominator = value
        return numerator / denominator if denominator else 0.0
    return float(value)


def _segment_indices(key: Any, x: int, y: int, width: int, height: int) -> list[int]:
    """Indices (into the offsets / byte counts) of the tiles or strips intersecting the region, every plane."""
    planes = key.shaped[0]
    if key.is_tiled:
        seg_h, seg_w = int(key.tilelength), int(key.tilewidth)
    else:
        seg_h, seg_w = min(int(key.rowsperstrip), int(key.imagelength)), int(key.imagewidth)
    across = math.ceil(key.imagewidth / seg_w)
    per_plane = math.ceil(key.imagelength / seg_h) * across
    rows = range(y // seg_h, (y + height - 1) // seg_h + 1)
    cols = range(x // seg_w, (x + width - 1) // seg_w + 1)
    return [p * per_plane + r * across + c for p in range(planes) for r in rows for c in cols]


def _paste(out: np.ndarray, segment: np.ndarray, top: int, left: int) -> None:
    """Copy the part of ``segment`` (h, w, c) placed at (top, left) of ``out`` that falls inside it."""
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(out.shape[0], top + segment.shape[0]), min(out.shape[1], left + segment.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = segment[y0 - top : y1 - top, x0 - left : x1 - left]


# --- PNG / JPEG / BMP ----------------------------------------------------------------------------------------

class ImageReader(SlideReader):
    """A plain image decoded whole (bounded by ``MAX_IMAGE_PIXELS``, see the module docstring)."""

    kind = "image"

    def __init__(self, path: Path, mpp: float | None = None) -> None:
        self.path = Path(path)
        self._pixels = read_image(self.path)
        height, width = self._pixels.shape[:2]
        self.levels = (SlideLevel(width, height, 1.0),)
        self.mpp, self.mpp_source = resolve_mpp(self.path, mpp, self._metadata_mpp)

    def _metadata_mpp(self) -> MppFound | str:
        return _header_dpi_mpp(self.path)  # read and checked already: only the header is parsed here

    def _read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        return self._pixels[y : y + height, x : x + width].copy()

    def close(self) -> None:
        self._pixels = np.zeros((0, 0, 3), np.uint8)


# --- opening -------------------------------------------------------------------------------------------------

def _head(path: Path, size: int = 8) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def _is_ome(path: Path) -> bool:
    import tifffile

    try:
        with _tifffile_complaints(), tifffile.TiffFile(path) as tif:
            return bool(tif.is_ome)
    except Exception:  # not parseable: the readers below report why
        return False


def _openslide_vendor(path: Path) -> str | None:
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except (openslide.OpenSlideError, OSError):
        return None


def _openslide_decodes(path: Path) -> bool:
    """Whether OpenSlide decodes the slide's first level-0 tile. Its generic-TIFF reader (libtiff's RGBA path)
    refuses every tile of some valid files, e.g. uncompressed tiles of 16 or 48 px ("Invalid tile byte count"),
    which tifffile reads exactly; a slide it cannot decode at all goes to tifffile instead."""
    import openslide

    try:
        with openslide.OpenSlide(str(path)) as slide:
            slide.read_region((0, 0), 0, (1, 1))
    except (openslide.OpenSlideError, OSError):
        return False
    return True


def detect_kind(path: Path) -> str:
    """``"openslide"``, ``"tiff"`` or ``"image"`` from the file's content (see the module docstring)."""
    tiff = holds_tiff(path)
    if tiff and _is_ome(path):
        return "tiff"
    vendor = _openslide_vendor(path)
    if vendor == "generic-tiff" and not _openslide_decodes(path):
        return "tiff"
    if vendor:
        return "openslide"
    if tiff:
        return "tiff"
    if _head(path).startswith(_IMAGE_MAGIC):
        return "image"
    raise InputError(path, "unsupported format: not a slide OpenSlide reads, nor a TIFF, PNG, JPEG or BMP image")


_READERS: dict[str, type[OpenSlideReader | TiffReader | ImageReader]] = {
    "openslide": OpenSlideReader, "tiff": TiffReader, "image": ImageReader}


def open_slide(path: Path, mpp: float | None = None) -> SlideReader:
    """The reader for ``path`` (format from its content); ``mpp`` (µm/px, e.g. ``--mpp``) overrides the file's."""
    path = Path(path)
    _check_override(path, mpp)
    require_file(path, "slide file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    try:
        kind = detect_kind(path)
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from None
    return _READERS[kind](path, mpp)


# --- regions at a target µm/px -------------------------------------------------------------------------------

def _finest_enough(levels: tuple[SlideLevel, ...], downsample: float) -> int:
    """The coarsest level whose downsample is at most ``downsample`` (with :data:`LEVEL_TOLERANCE`); level 0
    when every level is coarser."""
    fits = [i for i, level in enumerate(levels) if level.downsample <= downsample * (1 + LEVEL_TOLERANCE)]
    return max(fits, key=lambda i: levels[i].downsample) if fits else 0


def _check_target(reader: SlideReader, target_mpp: float) -> None:
    if not _valid_mpp(target_mpp):
        raise InputError(reader.path, f"target µm/px must be a finite number > 0, got {target_mpp!r}")


def level_for_mpp(reader: SlideReader, target_mpp: float) -> int:
    """The pyramid level ``read_at_mpp`` reads for ``target_mpp``: the coarsest at least as fine."""
    _check_target(reader, target_mpp)
    return _finest_enough(reader.levels, target_mpp / reader.mpp)


def slide_size_at_mpp(reader: SlideReader, target_mpp: float) -> tuple[int, int]:
    """(width, height) of the whole slide in target pixels."""
    _check_target(reader, target_mpp)
    scale = target_mpp / reader.mpp  # level-0 px per target px
    base = reader.levels[0]
    return max(1, round(base.width / scale)), max(1, round(base.height / scale))


def read_at_mpp(reader: SlideReader, target_mpp: float, x: int, y: int, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB at ``target_mpp``, top-left at target pixel (x, y); the parts beyond the
    slide are white, a region entirely outside it an InputError.

    Read from :func:`level_for_mpp`'s level and resampled (area averaging when shrinking, bilinear when
    enlarging). With integer scale factors and aligned positions a region equals the same window of the whole
    slide resized at once (see :func:`_scaled_region`)."""
    _check_target(reader, target_mpp)
    if width < 1 or height < 1:
        raise InputError(reader.path, f"empty region {width}×{height} requested")
    check_pixels(reader.path, height, width, "region")
    slide_w, slide_h = slide_size_at_mpp(reader, target_mpp)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, slide_w), min(y + height, slide_h)
    if x0 >= x1 or y0 >= y1:
        raise InputError(reader.path, f"region x={x} y={y} {width}×{height} at {target_mpp:g} µm/px lies "
                                      f"outside the slide ({slide_w}×{slide_h} at that resolution)")
    inside = _scaled_region(reader, target_mpp, x0, y0, x1 - x0, y1 - y0)
    if (x0, y0, x1, y1) == (x, y, x + width, y + height):
        return inside
    out = np.full((height, width, 3), WHITE, np.uint8)
    out[y0 - y : y1 - y, x0 - x : x1 - x] = inside
    return out


def _scaled_region(reader: SlideReader, target_mpp: float, x: int, y: int, width: int, height: int) -> np.ndarray:
    """A region inside the slide at ``target_mpp``.

    The level pixels under the region are read (with one pixel of context on each side when enlarging, so
    that bilinear weights near the region's edge see the slide's neighbours, not a replicated border), the
    block resized by the exact scale and the region cut out of it. cv2.resize maps output pixel i to input
    (i + 0.5) * r - 0.5; shifting a block by whole input pixels shifts its output by whole pixels exactly when
    1/r (enlarging) or r (shrinking, area blocks aligned) is an integer, hence the equality above."""
    import cv2

    index = level_for_mpp(reader, target_mpp)
    level = reader.levels[index]
    ratio = target_mpp / reader.mpp / level.downsample  # level px per target px
    if abs(ratio - 1) * max(width, height) < SUBPIXEL:  # resampling would move no pixel by half a pixel
        left, top = min(round(x * ratio), level.width - width), min(round(y * ratio), level.height - height)
        if left >= 0 and top >= 0:
            return reader.read(index, left, top, width, height)
    context = 1 if ratio < 1 else 0
    lx0, ly0, lx1, ly1 = x * ratio, y * ratio, (x + width) * ratio, (y + height) * ratio
    bx0, by0 = max(0, math.floor(lx0) - context), max(0, math.floor(ly0) - context)
    bx1, by1 = min(level.width, math.ceil(lx1) + context), min(level.height, math.ceil(ly1) + context)
    block = reader.read(index, bx0, by0, bx1 - bx0, by1 - by0)
    size = (max(1, round((bx1 - bx0) / ratio)), max(1, round((by1 - by0) / ratio)))
    scaled = cv2.resize(block, size, interpolation=cv2.INTER_AREA if ratio > 1 else cv2.INTER_LINEAR)
    left, top = round((lx0 - bx0) / ratio), round((ly0 - by0) / ratio)
    need_w, need_h = left + width - scaled.shape[1], top + height - scaled.shape[0]
    if need_w > 0 or need_h > 0:  # rounding at the slide's far edge: repeat its last pixels
        scaled = np.pad(scaled, ((0, max(0, need_h)), (0, max(0, need_w)), (0, 0)), mode="edge")
    return np.ascontiguousarray(scaled[top : top + height, left : left + width])
