"""Tissue masks (cellprobe.data.tissue) on a slide of real CoNSeP patches on glass."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from cellprobe.config import parse_config
from cellprobe.data.slide_fixtures import consep_mosaic, write_aperio_tiff
from cellprobe.data.slide_reader import open_slide
from cellprobe.data.tissue import (
    TissueMask,
    TissueSettings,
    detect_tissue,
    mask_from_geojson,
    mask_from_png,
)
from cellprobe.errors import InputError

WIDTH, HEIGHT, MPP = 2048, 1536, 0.25
TISSUE = (256, 256, 1536, 1024)  # x, y, width, height of the real patches on the slide
SPECK = (1900, 100, 12, 12)  # a stained speck of dust on the glass: far below min_tissue_mm2
HOLE = (900, 700, 24, 24)  # a small gap in the tissue: below max_hole_mm2


def _box(canvas: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return canvas[y : y + h, x : x + w]


@pytest.fixture(scope="module")
def glass_slide(consep_root, tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    canvas = np.clip(rng.normal(243, 3, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)  # noisy glass
    _box(canvas, TISSUE)[:] = consep_mosaic(consep_root, 4, 6)[0]
    _box(canvas, SPECK)[:] = (120, 40, 160)
    _box(canvas, HOLE)[:] = 243
    path = tmp_path_factory.mktemp("tissue") / "glass.svs"
    return write_aperio_tiff(path, canvas, WIDTH, HEIGHT, mpp=MPP, levels=(1, 4), compression="zlib")


@pytest.fixture
def slide(glass_slide):
    with open_slide(glass_slide) as reader:
        yield reader


@pytest.mark.parametrize("channel", ["saturation", "od"])
def test_otsu_finds_the_tissue_and_drops_dust(slide, channel):
    tissue = detect_tissue(slide, TissueSettings(channel=channel, thumbnail_side=512))
    assert tissue.mask.shape == (384, 512) and tissue.mask.dtype == bool and tissue.downsample == 4.0
    truth = np.zeros((HEIGHT, WIDTH), bool)
    _box(truth, TISSUE)[:] = True
    truth = cv2.resize(truth.astype(np.uint8), (512, 384), interpolation=cv2.INTER_NEAREST) > 0
    iou = (tissue.mask & truth).sum() / (tissue.mask | truth).sum()
    assert iou > 0.9, iou
    assert not tissue.touches(*SPECK)  # removed as dust
    assert tissue.touches(*HOLE)  # filled
    assert tissue.touches(*TISSUE) and not tissue.touches(0, 0, 200, 200)
    expected = TISSUE[2] * TISSUE[3] * (MPP / 1000) ** 2
    assert tissue.area_mm2(MPP) == pytest.approx(expected, rel=0.1)


def test_threshold_and_all_methods(slide):
    strict = detect_tissue(slide, TissueSettings(method="threshold", threshold=0.3, thumbnail_side=256,
                                                 min_tissue_mm2=0.0))
    loose = detect_tissue(slide, TissueSettings(method="threshold", threshold=0.1, thumbnail_side=256))
    assert 0 < strict.mask.sum() < loose.mask.sum()
    everything = detect_tissue(slide, TissueSettings(method="all"))
    assert everything.mask.all() and everything.fraction(0, 0, WIDTH, HEIGHT) == 1.0


def test_settings_are_strict():
    with pytest.raises(ValidationError, match="needs a threshold"):
        TissueSettings(method="threshold")
    with pytest.raises(ValidationError, match="used only by method 'threshold'"):
        TissueSettings(threshold=0.2)
    with pytest.raises(InputError, match="thumbnail_sides"):
        parse_config(TissueSettings, {"thumbnail_sides": 512}, "tissue.yaml")
    with pytest.raises(InputError, match="'thumbnail_side'"):
        parse_config(TissueSettings, {"thumbnail_side": "512"}, "tissue.yaml")
    assert parse_config(TissueSettings, {"method": "threshold", "threshold": 0.2}).threshold == 0.2


def test_smoothing_past_what_the_blur_holds_is_refused(slide):
    """The 28th probe's class, found beside it: tissue.smoothing_um 1e300 hung OpenCV's blur, and a few thousand
    thumbnail pixels crashed the process (a segmentation fault); the setting and the pixels it makes are bounded."""
    with pytest.raises(InputError, match="less than or equal to 100"):
        parse_config(TissueSettings, {"smoothing_um": 1e300})
    with pytest.raises(InputError, match="less than or equal to 16384"):
        parse_config(TissueSettings, {"thumbnail_side": 10**9})
    # the full-resolution thumbnail of a 2048-px slide at 0.25 µm/px: 100 µm are 400 px
    with pytest.raises(InputError, match=r"tissue.smoothing_um 100 µm is 400 px of its thumbnail \(0.25 µm/px\), "
                                         r"over 256 px") as info:
        detect_tissue(slide, TissueSettings(smoothing_um=100))
    assert info.value.path == str(slide.path)


def test_blank_slide_has_no_tissue(tmp_path):
    glass = np.clip(np.random.default_rng(1).normal(243, 3, (512, 768, 3)), 0, 255).astype(np.uint8)
    path = write_aperio_tiff(tmp_path / "blank.svs", glass, 768, 512, mpp=MPP, levels=(1,), compression="zlib")
    with open_slide(path) as reader, pytest.raises(InputError, match="no tissue found") as info:
        detect_tissue(reader, TissueSettings(thumbnail_side=256))
    assert info.value.path == str(path)


def test_mask_box_queries():
    mask = TissueMask(np.zeros((10, 20), bool), downsample=8.0)
    mask.mask[2, 3] = True  # level-0 x 24..32, y 16..24
    assert mask.touches(24, 16, 8, 8) and mask.touches(0, 0, 25, 17) and mask.touches(31.5, 23.5, 1, 1)
    assert not mask.touches(32, 16, 8, 8) and not mask.touches(0, 0, 24, 16)
    assert not mask.touches(10_000, 10_000, 8, 8) and mask.fraction(10_000, 0, 8, 8) == 0.0
    assert mask.fraction(24, 16, 16, 8) == 0.5
    assert mask.area_mm2(0.25) == pytest.approx((8 * 0.25 / 1000) ** 2)


# --- masks from files --------------------------------------------------------------------------------------

SQUARE = [[200, 200], [1000, 200], [1000, 1000], [200, 1000], [200, 200]]
HOLE_RING = [[400, 400], [600, 400], [600, 600], [400, 600], [400, 400]]
TRIANGLE = [[1500, 200], [1900, 200], [1700, 600], [1500, 200]]


def _feature(kind: str, coordinates) -> dict:
    return {"type": "Feature", "geometry": {"type": kind, "coordinates": coordinates},
            "properties": {"objectType": "annotation"}}


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_geojson_polygons_with_holes(slide, tmp_path):
    features = [_feature("Polygon", [SQUARE, HOLE_RING]), _feature("MultiPolygon", [[TRIANGLE]])]
    masks = [mask_from_geojson(_write(tmp_path / f"{i}.geojson", data), slide, 8.0)
             for i, data in enumerate([{"type": "FeatureCollection", "features": features}, features])]
    single = mask_from_geojson(_write(tmp_path / "one.geojson", features[0]), slide, 8.0)
    bare = mask_from_geojson(_write(tmp_path / "bare.geojson", features[0]["geometry"]), slide, 8.0)  # 26th probe
    assert np.array_equal(bare.mask, single.mask)
    assert np.array_equal(masks[0].mask, masks[1].mask) and masks[0].mask.shape == (192, 256)
    mask = masks[0]
    assert mask.touches(300, 300, 1, 1) and not mask.touches(500, 500, 1, 1)  # the hole is cut out
    assert mask.touches(1700, 300, 1, 1) and not single.touches(1700, 300, 1, 1)
    assert not mask.touches(1100, 1100, 50, 50)
    expected = (800 * 800 - 200 * 200 + 400 * 400 / 2) / 64  # mask pixels of the areas
    assert mask.mask.sum() == pytest.approx(expected, rel=0.05)  # fillPoly includes the edges


@pytest.mark.parametrize(("content", "match"), [
    ("{not json", "not valid JSON"),
    ('{"type": "Point", "coordinates": [1, 2]}', "feature 0: geometry 'Point' is not an area"),
    ('{"type": "Topology"}', "expected a GeoJSON Feature, FeatureCollection, geometry or list"),
    (json.dumps([_feature("Point", [1, 2])]), "feature 0: geometry 'Point' is not an area"),
    (json.dumps([_feature("Polygon", [SQUARE]), _feature("Polygon", [[["1", "2"], [3, 4], [5, 6]]])]),
     "feature 1: polygon ring"),
    (json.dumps(_feature("Polygon", [[[0, 0], [1, 1]]])), "at least 3"),
    (json.dumps({"type": "FeatureCollection", "features": []}), "mask is empty"),
    (json.dumps([_feature("Polygon", [[[5000, 5000], [6000, 5000], [6000, 6000]]])]), "do not overlap the slide"),
])
def test_bad_geojson(slide, tmp_path, content, match):
    path = tmp_path / "annotations.geojson"
    path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        mask_from_geojson(path, slide, 8.0)
    assert info.value.path == str(path)


def test_png_mask(slide, tmp_path):
    drawn = np.zeros((HEIGHT // 4, WIDTH // 4), np.uint8)
    drawn[64:128, 64:256] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), drawn)
    mask = mask_from_png(tmp_path / "mask.png", slide, 8.0)
    assert mask.mask.shape == (192, 256) and mask.mask.sum() == 32 * 96
    assert mask.touches(300, 300, 1, 1) and not mask.touches(100, 100, 100, 100)


def test_a_palette_png_mask_reads_as_the_greys_it_shows(slide, tmp_path):
    """The 28th probe: a palette mask whose index 0 is white and 1 black was read by index, the black part
    taken as tissue: silently inverted."""
    from PIL import Image

    from cellprobe.data.io import read_label_image

    index = np.zeros((HEIGHT // 4, WIDTH // 4), np.uint8)
    index[64:128, 64:256] = 1  # black, on white
    mask = Image.fromarray(index, "P")
    mask.putpalette([255, 255, 255, 0, 0, 0])
    mask.save(tmp_path / "palette.png")
    read = mask_from_png(tmp_path / "palette.png", slide, 8.0)
    assert read.mask.sum() == 192 * 256 - 32 * 96 and not read.touches(300, 300, 1, 1)  # the white is tissue
    assert np.array_equal(read_label_image(tmp_path / "palette.png"), index)  # a label map: its indices


@pytest.mark.parametrize("channels", [3, 4])
def test_png_mask_saved_as_grey_rgb_reads_as_its_one_channel(slide, tmp_path, channels):
    """Twenty-fifth probe: a black-and-white mask saved as RGB (as image editors do) was refused as 'label map
    must be 2-D'; grey RGB and opaque RGBA read as the one-channel mask, colours and transparency are named."""
    from PIL import Image

    drawn = np.zeros((HEIGHT // 4, WIDTH // 4, channels), np.uint8)
    drawn[64:128, 64:256, :3] = 255
    if channels == 4:
        drawn[..., 3] = 255
    Image.fromarray(drawn).save(tmp_path / "mask.png")
    mask = mask_from_png(tmp_path / "mask.png", slide, 8.0)
    assert mask.mask.shape == (192, 256) and mask.mask.sum() == 32 * 96
    drawn[0, 0, 0] = 7
    Image.fromarray(drawn).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match="tissue mask is in colour") as info:
        mask_from_png(tmp_path / "colour.png", slide, 8.0)
    assert info.value.path == str(tmp_path / "colour.png")
    if channels == 4:
        drawn[0, 0] = (0, 0, 0, 0)
        Image.fromarray(drawn).save(tmp_path / "clear.png")
        with pytest.raises(InputError, match="tissue mask has transparent pixels"):
            mask_from_png(tmp_path / "clear.png", slide, 8.0)


@pytest.mark.parametrize(("shape", "fill", "match"), [((384, 384), 1, "aspect ratio"), ((384, 512), 0, "mask is empty")])
def test_bad_png_mask(slide, tmp_path, shape, fill, match):
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), np.full(shape, fill, np.uint8))
    with pytest.raises(InputError, match=match) as info:
        mask_from_png(path, slide, 8.0)
    assert info.value.path == str(path)


def test_annotation_coordinates_far_beyond_any_slide_are_refused(tmp_path):
    """Third probe: a vertex at 1e300 was rasterised with a cast warning and an empty result."""
    import json

    import numpy as np

    from cellprobe.data.slide_fixtures import write_ome_tiff
    from cellprobe.data.slide_reader import open_slide
    from cellprobe.data.tissue import mask_from_geojson
    from cellprobe.errors import InputError

    slide = write_ome_tiff(tmp_path / "s.ome.tif", np.full((256, 256, 3), 200, np.uint8), 256, 256, 0.5, levels=(1,))
    path = tmp_path / "huge.geojson"
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [1e300, 0], [1e300, 100], [0, 100], [0, 0]]]}}))
    with open_slide(slide) as reader, pytest.raises(InputError, match="lies far beyond the slide") as err:
        mask_from_geojson(path, reader, 4.0)
    assert err.value.path == str(path)
