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
    with pytest.raises(InputError, match=r"gray\.png: image is not RGB \(mode L\)"):
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
