"""Whole-slide reading (cellprobe.data.slide_reader) on slides written from real CoNSeP patches."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import openslide
import pytest
import tifffile

from cellprobe.data.slide_fixtures import consep_mosaic, write_aperio_tiff, write_ome_tiff
from cellprobe.data.slide_reader import (
    OpenSlideReader,
    TiffReader,
    level_for_mpp,
    open_slide,
    read_at_mpp,
    slide_size_at_mpp,
)
from cellprobe.errors import InputError


@pytest.fixture(scope="module")
def image(consep_root) -> np.ndarray:
    """1024 × 1536 px of real H&E (4 × 6 CoNSeP patches)."""
    return consep_mosaic(consep_root, 4, 6)[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slides")


@pytest.fixture(scope="module")
def lossless_svs(image, folder) -> Path:
    """Aperio layout, uncompressed, levels 1/2/4: readable by OpenSlide and tifffile alike."""
    h, w = image.shape[:2]
    return write_aperio_tiff(folder / "lossless.svs", image, w, h, mpp=0.25, levels=(1, 2, 4), compression=None)


def _half(image: np.ndarray, times: int = 1) -> np.ndarray:
    for _ in range(times):
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return image


def _expect_error(path: Path, match: str, **kwargs) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        with open_slide(path, **kwargs) as reader:
            level = reader.levels[0]
            reader.read(0, 0, 0, level.width, level.height)
    assert info.value.path == str(path)
    return info.value


# --- the same pixels through both readers ------------------------------------------------------------------

def test_openslide_and_tifffile_read_the_same_pixels(lossless_svs, image):
    assert openslide.OpenSlide.detect_format(str(lossless_svs)) == "aperio"
    with open_slide(lossless_svs) as slide, TiffReader(lossless_svs, mpp=0.25) as tiff:
        assert isinstance(slide, OpenSlideReader) and slide.kind == "openslide"
        assert slide.levels == tiff.levels
        assert [lv.downsample for lv in slide.levels] == [1.0, 2.0, 4.0]
        for level, expected in enumerate((image, _half(image), _half(image, 2))):
            size = slide.levels[level]
            assert np.array_equal(slide.read(level, 0, 0, size.width, size.height), expected)
            for x, y, w, h in ((0, 0, 17, 9), (size.width - 100, size.height - 60, 100, 60), (250, 3, 40, 120)):
                region = slide.read(level, x, y, w, h)
                assert region.shape == (h, w, 3) and region.dtype == np.uint8
                assert np.array_equal(region, tiff.read(level, x, y, w, h))
                assert np.array_equal(region, expected[y : y + h, x : x + w])


def test_aperio_jpeg_slide_gives_mpp_through_openslide(image, folder):
    h, w = image.shape[:2]
    path = write_aperio_tiff(folder / "jpeg.svs", image, w, h, mpp=0.25, levels=(1, 4))
    assert openslide.OpenSlide.detect_format(str(path)) == "aperio"
    assert float(openslide.OpenSlide(str(path)).properties["openslide.mpp-x"]) == 0.25
    with open_slide(path) as slide:
        assert (slide.kind, slide.mpp, slide.mpp_source) == ("openslide", 0.25, "openslide mpp-x/mpp-y")
        assert np.abs(slide.read(0, 0, 0, w, h).astype(int) - image).mean() < 3  # JPEG, quality 90
    with open_slide(path, mpp=0.3) as slide:  # --mpp wins over the file
        assert (slide.mpp, slide.mpp_source) == (0.3, "--mpp")


def test_ome_tiff_levels_and_physical_size(image, folder):
    h, w = image.shape[:2]
    path = write_ome_tiff(folder / "slide.ome.tif", image, w, h, mpp=0.5, levels=(1, 2))
    with open_slide(path) as slide:
        assert (slide.kind, slide.mpp, slide.mpp_source) == ("tiff", 0.5, "OME PhysicalSizeX/Y")
        assert [(lv.width, lv.height, lv.downsample) for lv in slide.levels] == [(w, h, 1.0), (w // 2, h // 2, 2.0)]
        assert np.array_equal(slide.read(0, 300, 200, 333, 211), image[200:411, 300:633])
        assert np.array_equal(slide.read(1, 0, 0, w // 2, h // 2), _half(image))


@pytest.mark.parametrize(("size", "unit", "mpp"), [(250, "nm", 0.25), (0.0005, "mm", 0.5), (0.25, None, 0.25)])
def test_ome_physical_size_units(image, tmp_path, size, unit, mpp):
    metadata = {"axes": "YXS", "PhysicalSizeX": size, "PhysicalSizeY": size}
    if unit:
        metadata |= {"PhysicalSizeXUnit": unit, "PhysicalSizeYUnit": unit}
    tifffile.imwrite(tmp_path / "a.ome.tif", image[:256, :256], photometric="rgb", ome=True, metadata=metadata)
    with open_slide(tmp_path / "a.ome.tif") as slide:
        assert slide.mpp == pytest.approx(mpp)


@pytest.mark.parametrize(("tag_mpp", "refused"), [(2.5, True), (0.26, False), (None, False)])
def test_ome_size_and_resolution_tags_that_disagree_are_refused(image, tmp_path, tag_mpp, refused):
    """Twenty-fifth probe (noted): OME PhysicalSize 0.25 µm/px beside resolution tags of 2.5 µm/px took the OME
    value without a word; one of the two is wrong, and only the user knows which (--mpp)."""
    metadata = {"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}
    extra = {} if tag_mpp is None else {"resolution": (1e4 / tag_mpp, 1e4 / tag_mpp), "resolutionunit": "CENTIMETER"}
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, image[:256, :256], photometric="rgb", ome=True, metadata=metadata, **extra)
    if refused:
        with pytest.raises(InputError, match=r"OME metadata gives 0\.25 µm/px and its TIFF resolution tags 2\.5 "
                                             r"µm/px: pass --mpp") as err:
            open_slide(path)
        assert err.value.path == str(path)
        with open_slide(path, mpp=0.25) as slide:
            assert slide.mpp == 0.25
    else:
        with open_slide(path) as slide:
            assert (slide.mpp, slide.mpp_source) == (0.25, "OME PhysicalSizeX/Y")


# --- µm/px from TIFF resolution tags -----------------------------------------------------------------------

@pytest.mark.parametrize(("resolution", "unit"), [((40_000, 40_000), "CENTIMETER"), ((101_600, 101_600), "INCH")])
def test_stripped_tiff_resolution_tags(image, tmp_path, resolution, unit):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, image, photometric="rgb", resolution=resolution, resolutionunit=unit, rowsperstrip=37)
    with open_slide(path) as slide:
        assert (slide.kind, slide.mpp_source) == ("tiff", f"TIFF resolution tags ({unit.lower()})")
        assert slide.mpp == pytest.approx(0.25)
        assert np.array_equal(slide.read(0, 5, 30, 700, 90), image[30:120, 5:705])  # spans strips


@pytest.mark.parametrize("tiled", [False, True])  # tiled: OpenSlide's generic-tiff, which believes 72 dpi
@pytest.mark.parametrize(("resolution", "unit"), [((72, 72), "INCH"), ((1, 1), "NONE"), ((300, 300), "INCH")])
def test_default_resolution_is_not_a_pixel_size(image, tmp_path, resolution, unit, tiled):
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, image, photometric="rgb", resolution=resolution, resolutionunit=unit,
                     tile=(256, 256) if tiled else None, metadata=None)
    error = _expect_error(path, "µm/px unknown: pass --mpp")
    assert "\n" not in str(error)
    with open_slide(path, mpp=0.5) as slide:
        assert (slide.mpp, slide.mpp_source, slide.kind) == (0.5, "--mpp", "openslide" if tiled else "tiff")


@pytest.mark.parametrize("tile", [16, 48, 64])
def test_a_tiled_tiff_openslide_cannot_decode_is_read_by_tifffile(image, tmp_path, tile):
    """The 27th probe: uncompressed 16- and 48-px tiles, valid TIFF, were refused as 'unreadable image data'
    (OpenSlide 4.0's generic-TIFF decoder refuses every such tile); 64 px stays with OpenSlide."""
    import openslide

    path = tmp_path / f"t{tile}.tif"
    tifffile.imwrite(path, image, photometric="rgb", tile=(tile, tile), resolution=(40_000, 40_000),
                     resolutionunit="CENTIMETER")
    assert openslide.OpenSlide.detect_format(str(path)) == "generic-tiff"
    with open_slide(path) as slide:
        assert slide.kind == ("openslide" if tile == 64 else "tiff") and slide.mpp == pytest.approx(0.25)
        assert np.array_equal(slide.read(0, 5, 30, 300, 90), image[30:120, 5:305])


def test_non_square_pixels_refused(image, tmp_path):
    path = tmp_path / "xy.tif"
    tifffile.imwrite(path, image, photometric="rgb", resolution=(40_000, 39_000), resolutionunit="CENTIMETER")
    _expect_error(path, "differs in x")
    with open_slide(path, mpp=0.25) as slide:  # the user's value wins
        assert slide.mpp == 0.25


@pytest.mark.parametrize("bad", [0.0, -0.25, math.nan, math.inf])
def test_mpp_argument_must_be_a_positive_size(lossless_svs, bad):
    _expect_error(lossless_svs, "--mpp must be a finite number > 0", mpp=bad)


# --- regions at a target resolution ------------------------------------------------------------------------

def test_coarser_slide_is_enlarged_from_level_0(image, tmp_path):
    h, w = image.shape[:2]
    path = write_ome_tiff(tmp_path / "half.ome.tif", image, w, h, mpp=0.5, levels=(1,))
    whole = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    with open_slide(path) as slide:
        assert level_for_mpp(slide, 0.25) == 0
        assert slide_size_at_mpp(slide, 0.25) == (2 * w, 2 * h)
        for x, y in ((0, 0), (513, 201), (2 * w - 300, 2 * h - 128)):
            region = read_at_mpp(slide, 0.25, x, y, 300, 128)
            assert np.abs(region.astype(int) - whole[y : y + 128, x : x + 300]).max() <= 1


def test_level_closest_above_the_target(image, tmp_path):
    h, w = image.shape[:2]
    path = write_ome_tiff(tmp_path / "fine.ome.tif", image, w, h, mpp=0.125, levels=(1, 2, 4))
    with open_slide(path) as slide:
        assert [level_for_mpp(slide, t) for t in (0.1, 0.125, 0.2, 0.25, 0.252, 0.3, 0.5, 2.0)] == [0, 0, 0, 1, 1, 1, 2, 2]
        level1 = slide.read(1, 0, 0, w // 2, h // 2)
        assert np.array_equal(read_at_mpp(slide, 0.25, 64, 32, 256, 200), level1[32:232, 64:320])
        quarter = _half(level1)  # 0.5 µm/px: level 2 as is
        assert np.array_equal(read_at_mpp(slide, 0.5, 10, 20, 100, 50), quarter[20:70, 10:110])
        # 1 µm/px: level 2 shrunk by exactly 2, area blocks aligned: the same as shrinking the whole level
        whole = cv2.resize(quarter, (w // 8, h // 8), interpolation=cv2.INTER_AREA)
        assert np.array_equal(read_at_mpp(slide, 1.0, 16, 8, 64, 40), whole[8:48, 16:80])


def test_shrinking_a_plain_image_matches_resizing_it_whole(image, tmp_path):
    cv2.imwrite(str(tmp_path / "slide.png"), image[..., ::-1])
    whole = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    with open_slide(tmp_path / "slide.png", mpp=0.25) as slide:
        assert slide.kind == "image" and slide.levels[0].width == image.shape[1]
        assert np.array_equal(read_at_mpp(slide, 0.5, 100, 50, 256, 256), whole[50:306, 100:356])


def test_parts_beyond_the_slide_are_white(lossless_svs, image):
    h, w = image.shape[:2]
    with open_slide(lossless_svs) as slide:
        region = read_at_mpp(slide, 0.25, w - 100, h - 50, 256, 256)
        assert np.array_equal(region[:50, :100], image[h - 50 :, w - 100 :])
        assert (region[50:] == 255).all() and (region[:, 100:] == 255).all()
        left = read_at_mpp(slide, 0.5, -10, 0, 64, 64)
        assert (left[:, :10] == 255).all() and np.array_equal(left[:, 10:], _half(image)[:64, :54])
        with pytest.raises(InputError, match="outside the slide"):
            read_at_mpp(slide, 0.25, w, 0, 64, 64)
        with pytest.raises(InputError, match="outside level 0"):
            slide.read(0, w - 10, 0, 11, 5)
        with pytest.raises(InputError, match="level 3 does not exist"):
            slide.read(3, 0, 0, 1, 1)
        with pytest.raises(InputError, match="target µm/px"):
            read_at_mpp(slide, 0.0, 0, 0, 8, 8)


def test_thumbnail_reads_a_coarse_level(lossless_svs, image):
    with open_slide(lossless_svs) as slide:
        thumb, downsample = slide.thumbnail(384)
        assert thumb.shape == (256, 384, 3) and downsample == 4.0
        assert np.array_equal(thumb, _half(image, 2))  # level 2 as stored
        small, downsample = slide.thumbnail(100)
        assert max(small.shape[:2]) == 100 and downsample == pytest.approx(1536 / 100, rel=0.01)


def test_transparent_pixels_are_white(image, tmp_path):
    rgba = np.dstack([image[:256, :256], np.full((256, 256), 255, np.uint8)])
    rgba[:100, :, 3] = 0
    tifffile.imwrite(tmp_path / "alpha.tif", rgba, photometric="rgb", extrasamples="unassalpha")
    with open_slide(tmp_path / "alpha.tif", mpp=0.25) as slide:
        region = slide.read(0, 0, 0, 256, 256)
        assert (region[:100] == 255).all() and np.array_equal(region[100:], image[100:256, :256])


def test_region_read_touches_only_its_tiles(image, tmp_path):
    """A 20k × 20k slide (1.2 GB of RGB) whose 512² region costs a few MB: only the tiles under it are read."""
    side, tile = 20_480, 256
    blank = np.full((tile, tile, 3), 255, np.uint8)

    def tiles(row: int, col: int) -> np.ndarray:  # real patches in a block near the middle, glass elsewhere
        if 40 <= row < 44 and 40 <= col < 46:
            r, c = (row - 40) * tile, (col - 40) * tile
            return image[r : r + tile, c : c + tile]
        return blank

    path = write_ome_tiff(tmp_path / "big.ome.tif", tiles, side, side, mpp=0.25, levels=(1,), tile=tile)
    with open_slide(path) as slide:
        tracemalloc.start()
        region = slide.read(0, 40 * tile + 100, 40 * tile + 60, 512, 512)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert np.array_equal(region, image[60:572, 100:612])
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MB for a 512² region"


# --- bad input ---------------------------------------------------------------------------------------------

def test_truncated_slides_are_refused(lossless_svs, image, tmp_path):
    h, w = image.shape[:2]
    ome = write_ome_tiff(tmp_path / "cut.ome.tif", image, w, h, mpp=0.25, levels=(1, 2))
    for source in (lossless_svs, ome):
        cut = tmp_path / f"cut-{source.name}"
        cut.write_bytes(source.read_bytes()[: source.stat().st_size * 2 // 3])
        _expect_error(cut, "truncated|unreadable")


def test_files_that_are_not_slides(tmp_path, image):
    text = tmp_path / "notes.svs"
    text.write_text("not a slide\n")
    _expect_error(text, "unsupported format")
    empty = tmp_path / "empty.ndpi"
    empty.touch()
    _expect_error(empty, "empty file")
    _expect_error(tmp_path / "missing.svs", "missing slide file")
    npy = tmp_path / "array.tif"
    np.save(npy.with_suffix(".npy"), image)
    npy.with_suffix(".npy").rename(npy)
    _expect_error(npy, "unsupported format")


def test_tiffs_that_are_not_rgb(tmp_path):
    tifffile.imwrite(tmp_path / "deep.tif", np.zeros((64, 64, 3), np.uint16), photometric="rgb")
    _expect_error(tmp_path / "deep.tif", "uint16", mpp=0.25)
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 64, 64), np.uint8))
    _expect_error(tmp_path / "stack.tif", "planes", mpp=0.25)
    grey = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8)
    tifffile.imwrite(tmp_path / "grey.tif", grey, photometric="minisblack")
    _expect_error(tmp_path / "grey.tif", "1 sample per pixel .*grey.*expected RGB", mpp=0.25)  # not converted


TAGS = {"resolution": (4e4, 4e4), "resolutionunit": "CENTIMETER"}  # 0.25 µm/px


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled-openslide", "stripped-tifffile"])
def test_16_bit_tiff_is_refused_whichever_reader_reads_it(image, tmp_path, tiled):
    """OpenSlide reads a tiled 16-bit TIFF as generic-tiff and rescales it to 8 bits; its own tags refuse it."""
    path = tmp_path / "deep.tif"
    tile = {"tile": (256, 256)} if tiled else {}
    tifffile.imwrite(path, image[:512, :512].astype(np.uint16) * 257, photometric="rgb", **tile, **TAGS)
    assert (openslide.OpenSlide.detect_format(str(path)) == "generic-tiff") == tiled
    _expect_error(path, r"level 0: samples are uint16 \(16 bits\), expected 8-bit RGB: refused rather than rescaled")


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled-openslide", "stripped-tifffile"])
@pytest.mark.parametrize(("samples", "photometric", "problem"), [
    (5, "minisblack", r"5 samples per pixel \(photometric MINISBLACK\), expected RGB"),
    (1, "minisblack", r"1 sample per pixel \(grey, photometric MINISBLACK\), expected RGB"),
    (5, "rgb", r"5 samples per pixel \(RGB and 2 extra: unspecified ×2\), expected RGB"),
    # the 28th probe: 1024 samples gave a line naming 'unspecified' 1021 times
    (64, "rgb", r"64 samples per pixel \(RGB and 61 extra: unspecified ×61\), expected RGB"),
], ids=["5-channel", "grey", "rgb+2", "rgb+61"])
def test_extra_channels_and_grey_are_refused_whichever_reader_reads_them(image, tmp_path, tiled, samples,
                                                                         photometric, problem):
    """Neither OpenSlide nor tifffile may drop channels (or make grey RGB) silently: one line naming the file,
    at open, before any tissue detection."""
    pixels = np.resize(image[:512, :512], (512, 512, samples)) if samples > 5 else (
        np.dstack([image[:512, :512], image[:512, :512, :2]])[..., :samples])
    path = tmp_path / "channels.tif"
    tile = {"tile": (256, 256)} if tiled else {}
    tifffile.imwrite(path, pixels[..., 0] if samples == 1 else pixels, photometric=photometric,
                     planarconfig=None if samples == 1 else "contig", **tile, **TAGS)
    assert (openslide.OpenSlide.detect_format(str(path)) == "generic-tiff") == tiled
    error = _expect_error(path, "level 0: " + problem)
    assert "\n" not in str(error)


def test_tiled_rgba_is_still_read_by_openslide(image, tmp_path):
    rgba = np.dstack([image[:512, :512], np.full((512, 512), 255, np.uint8)])
    rgba[:100, :, 3] = 0
    path = tmp_path / "alpha.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples="unassalpha", tile=(256, 256), **TAGS)
    with open_slide(path) as slide:
        assert slide.kind == "openslide"
        region = slide.read(0, 0, 0, 512, 512)
        assert (region[:100] == 255).all() and np.array_equal(region[100:], image[100:512, :512])
