from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cellprobe.data.io import image_size, load_npy, load_npz_member, read_image, read_label_image, read_mat
from cellprobe.errors import InputError


def test_load_npy_memory_maps(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(12).reshape(3, 4))
    arr = load_npy(tmp_path / "a.npy")
    assert isinstance(arr, np.memmap) and arr[2, 3] == 11


def test_truncated_npy_names_file(tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((10, 8, 8, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"images\.npy: truncated or corrupt"):
        load_npy(path)


def test_pickled_npy_refused(tmp_path):
    path = tmp_path / "types.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickled"):
        load_npy(path, mmap=False)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(InputError, match="missing"):
        load_npy(tmp_path / "nope.npy")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="corrupt"):
        load_npz_member(tmp_path / "bad.npz", "inst")
    np.savez(tmp_path / "ok.npz", inst=np.zeros(3))
    with pytest.raises(InputError, match="no array 'cls'"):
        load_npz_member(tmp_path / "ok.npz", "cls")
    (tmp_path / "bad.mat").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"unreadable .mat"):
        read_mat(tmp_path / "bad.mat", ("inst_map",))


def test_read_image_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(read_image(tmp_path / "rgb.png"), rgb)
    assert image_size(tmp_path / "rgb.png") == (9, 7)
    opaque = np.concatenate([rgb, np.full((9, 7, 1), 255, np.uint8)], -1)
    Image.fromarray(opaque).save(tmp_path / "rgba.png")
    assert np.array_equal(read_image(tmp_path / "rgba.png"), rgb)
    opaque[0, 0, 3] = 10
    Image.fromarray(opaque).save(tmp_path / "alpha.png")
    with pytest.raises(InputError, match="alpha"):
        read_image(tmp_path / "alpha.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    with pytest.raises(InputError, match=r"gray\.png: image is greyscale, not RGB \(mode L\)"):
        read_image(tmp_path / "gray.png")


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match=r"a\.jpg: unreadable or truncated"):
        read_image(path)


def test_tiff_image_and_labels(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "img.tif", np.zeros((5, 6, 3), np.uint16))
    with pytest.raises(InputError, match="uint16, expected uint8"):
        read_image(tmp_path / "img.tif")
    tifffile.imwrite(tmp_path / "inst.tif", np.arange(30, dtype=np.int32).reshape(5, 6))
    assert read_label_image(tmp_path / "inst.tif").dtype == np.int32
    tifffile.imwrite(tmp_path / "three.tif", np.zeros((2, 5, 6), np.int32))
    with pytest.raises(InputError, match="2-D"):
        read_label_image(tmp_path / "three.tif")


def test_an_rgb_tiff_stored_planar_reads_as_the_same_image(tmp_path):
    """The twenty-fourth probe: an RGB TIFF with PlanarConfiguration=2 (samples stored as planes) was refused as
    'not RGB (shape (3, 96, 96))'."""
    import tifffile

    from cellprobe.data.io import image_size, read_image

    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    planar, contiguous = tmp_path / "planar.tif", tmp_path / "contiguous.tif"
    tifffile.imwrite(planar, np.moveaxis(rgb, -1, 0), planarconfig="separate", photometric="rgb")
    tifffile.imwrite(contiguous, rgb, photometric="rgb")
    with tifffile.TiffFile(planar) as tif:
        assert tif.series[0].axes == "SYX" and tif.pages[0].planarconfig == 2
    assert image_size(planar) == (20, 30)
    assert np.array_equal(read_image(planar), rgb) and np.array_equal(read_image(contiguous), rgb)


def test_each_file_goes_to_the_decoder_of_its_contents_not_its_name(tmp_path):
    """The 28th probe: a 16-bit RGB TIFF named .png went to Pillow, which read 12-bit values as 8-bit (max 15)
    without a word; a TIFF named as anything is read by tifffile now, and a PNG named .tif by Pillow."""
    import tifffile

    from cellprobe.data.io import check_image, holds_tiff

    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "deep.png", rgb.astype(np.uint16) * 16, photometric="rgb")
    for read in (read_image, image_size, check_image):
        with pytest.raises(InputError, match=r"deep\.png: image is 16 bits per channel"):
            read(tmp_path / "deep.png")
    tifffile.imwrite(tmp_path / "eight.png", rgb, photometric="rgb")
    Image.fromarray(rgb).save(tmp_path / "png.tif", format="PNG")
    assert holds_tiff(tmp_path / "eight.png") and not holds_tiff(tmp_path / "png.tif")
    assert np.array_equal(read_image(tmp_path / "eight.png"), rgb)
    assert np.array_equal(read_image(tmp_path / "png.tif"), rgb)
    tifffile.imwrite(tmp_path / "inst.png", np.arange(600, dtype=np.int32).reshape(20, 30) + 70000)
    assert read_label_image(tmp_path / "inst.png").max() == 70599  # int32 ids, not Pillow's reading


def test_colours_that_are_not_rgb_are_named_and_a_palette_reads_as_its_colours(tmp_path):
    """The 28th probe: a CMYK TIFF was refused as having 'a non-opaque alpha channel' (its K read as alpha); a
    palette PNG, lossless RGB, was refused as 'not RGB (mode P)'; a PNG colour key was ignored while a
    non-opaque alpha is refused."""
    import tifffile

    from cellprobe.data.io import check_image

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "cmyk.tif", rng.integers(0, 255, (20, 30, 4), dtype=np.uint8), photometric="separated")
    tifffile.imwrite(tmp_path / "grey.tif", rgb[..., 0], photometric="minisblack")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    for name, said in (("cmyk.tif", r"image is CMYK \(separated\), not RGB"), ("grey.tif", "image is greyscale"),
                       ("cmyk.jpg", r"image is CMYK, not RGB \(mode CMYK\)")):
        with pytest.raises(InputError, match=rf"{name}: {said}"):
            image_size(tmp_path / name)
    palette = Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "palette.png")
    shown = np.asarray(palette.convert("RGB"))
    assert np.array_equal(read_image(tmp_path / "palette.png"), shown)
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, :16] = np.asarray(palette.getpalette()[:48], np.uint16).reshape(16, 3).T * 257
    tifffile.imwrite(tmp_path / "palette.tif", np.asarray(palette), photometric="palette", colormap=colormap)
    assert np.array_equal(read_image(tmp_path / "palette.tif"), shown)
    colormap[0, 3] += 1  # a colour between two 8-bit values
    tifffile.imwrite(tmp_path / "deep_palette.tif", np.asarray(palette), photometric="palette", colormap=colormap)
    with pytest.raises(InputError, match="palette image with 16-bit colours"):
        read_image(tmp_path / "deep_palette.tif")
    Image.fromarray(rgb).save(tmp_path / "keyed.png", transparency=tuple(int(v) for v in rgb[0, 0]))
    for read in (read_image, check_image):
        with pytest.raises(InputError, match=r"keyed\.png: image has a colour key \(PNG tRNS\)"):
            read(tmp_path / "keyed.png")
    unused = rgb.copy()
    unused[unused == 0] = 1
    Image.fromarray(unused).save(tmp_path / "unused_key.png", transparency=(0, 0, 0))  # no pixel has it
    assert np.array_equal(read_image(tmp_path / "unused_key.png"), unused)


def test_the_tiff_orientation_tag_is_read_as_exif_is(tmp_path):
    """The 28th probe: predict warned of a JPEG's EXIF orientation but not of a TIFF's Orientation tag."""
    import tifffile

    from cellprobe.data.io import orientation_tag

    rgb = np.zeros((8, 8, 3), np.uint8)
    tifffile.imwrite(tmp_path / "turned.tif", rgb, photometric="rgb", extratags=[(274, 3, 1, 3, True)])
    tifffile.imwrite(tmp_path / "plain.tif", rgb, photometric="rgb")
    assert orientation_tag(tmp_path / "turned.tif") == 3 and orientation_tag(tmp_path / "plain.tif") == 0
