"""Gaps an outside probe found (reader options, multi-frame and empty images, catalog entries): each is now
one InputError naming the file at fault."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.catalog import load_catalog
from cellprobe.data.io import image_size, read_image, read_label_image
from cellprobe.errors import InputError

BAD_MPP = [-1, 0, 0.0, math.nan, math.inf, -math.inf, True, "0.5"]
BAD_NAMES = [["a", "a"], [], [""], ["  "], ["a", 3], [f"c{i}" for i in range(256)], "abc"]


def _patches(tmp_path, synth):
    images, inst, cls = synth
    names = [f"p{i}" for i in range(4)]
    fixtures.write_patches(tmp_path / "ds" / "test", images[:4], inst[:4], cls[:4], names, ["s0", "s0", "s1", "s1"])
    return tmp_path / "ds"


@pytest.mark.parametrize("mpp", BAD_MPP)
def test_bad_mpp_option_is_refused(tmp_path, synth, mpp):
    root = _patches(tmp_path, synth)
    with pytest.raises(InputError, match="mpp") as err:
        open_dataset(root, format="patches", split="test", mpp=mpp)
    assert err.value.path == str(root)


@pytest.mark.parametrize("mpp", [-1, 0, ".nan", ".inf", "true"])
def test_bad_mpp_in_dataset_yaml_names_it(tmp_path, synth, mpp):
    root = _patches(tmp_path, synth)
    (root / "dataset.yaml").write_text(f"mpp: {mpp}\n")
    with pytest.raises(InputError, match="mpp") as err:
        open_dataset(root, format="patches", split="test")
    assert err.value.path == str(root / "dataset.yaml")


@pytest.mark.parametrize("names", BAD_NAMES)
def test_bad_class_names_option_is_refused(tmp_path, synth, names):
    root = _patches(tmp_path, synth)
    with pytest.raises(InputError, match="class_names") as err:
        open_dataset(root, format="patches", split="test", class_names=names)
    assert err.value.path == str(root)


@pytest.mark.parametrize("names", BAD_NAMES)
def test_bad_class_names_in_dataset_yaml_names_it(tmp_path, synth, names):
    root = _patches(tmp_path, synth)
    (root / "test" / "dataset.yaml").write_text(yaml.safe_dump({"class_names": names}))
    with pytest.raises(InputError, match="class_names") as err:
        open_dataset(root, format="patches", split="test")
    assert err.value.path == str(root / "test" / "dataset.yaml")


def test_bad_options_refused_by_every_reader_that_takes_them(tmp_path, synth, conic_root, pannuke_root):
    images, inst, cls = synth
    folder = fixtures.write_folder(tmp_path / "fold", images[:2], inst[:2], cls[:2], ["a", "b"], ["w", "x", "y", "z"])
    for root, fmt in ((conic_root, "conic"), (pannuke_root, "pannuke"), (folder, "folder")):
        with pytest.raises(InputError, match="mpp"):
            open_dataset(root, format=fmt, mpp=-0.5)
    with pytest.raises(InputError, match="class_names: 'a' is listed twice"):
        open_dataset(conic_root, format="conic", class_names=["a", "a", "b", "c", "d", "e"])
    with pytest.raises(InputError, match="class_names: it lists no class"):
        open_dataset(folder, format="folder", class_names=[])
    (folder / "dataset.yaml").write_text("class_names: [w, x, w, z]\n")
    with pytest.raises(InputError, match="twice") as err:
        open_dataset(folder, format="folder")
    assert err.value.path == str(folder / "dataset.yaml")
    # the 29th probe: shown as 'z' in every table, matched as 'z ' (a run of 'z' then scored it class-agnostic)
    (folder / "dataset.yaml").write_text("class_names: [w, x, y, 'z ']\n")
    with pytest.raises(InputError, match="class_names: 'z ' has spaces around it") as err:
        open_dataset(folder, format="folder")
    assert err.value.path == str(folder / "dataset.yaml")


def test_good_options_still_read(tmp_path, synth):
    root = _patches(tmp_path, synth)
    ds = open_dataset(root, format="patches", split="test", mpp=0.25, class_names=["a", "b", "c", "d"])
    assert ds.mpp == 0.25 and ds.class_names == ("a", "b", "c", "d") and ds[0].image.shape[-1] == 3


# --- multi-frame and empty images ------------------------------------------------------------------------

def _frames(n=3):
    return [Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)) for i in range(n)]


@pytest.mark.parametrize("suffix", [".png", ".gif", ".webp"])
def test_animated_image_is_refused(tmp_path, suffix):
    path = tmp_path / f"anim{suffix}"
    frames = _frames()
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="3 frames") as err:
        read_image(path)
    assert err.value.path == str(path)
    with pytest.raises(InputError, match="frames"):
        read_label_image(path)


def test_multi_page_tiff_image_is_refused(tmp_path):
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.zeros((16, 16, 3), np.uint8))
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint8), append=True)
    with pytest.raises(InputError, match="2 frames") as err:
        read_image(path)
    assert err.value.path == str(path)
    single = tmp_path / "one.tif"
    tifffile.imwrite(single, np.zeros((16, 16, 3), np.uint8))
    assert read_image(single).shape == (16, 16, 3)


@pytest.mark.parametrize("shape,dtype,reader", [((0, 0, 3), np.uint8, read_image), ((0, 0), np.int32, read_label_image),
                                                ((0, 7), np.uint16, read_label_image)])
def test_empty_tiff_is_refused(tmp_path, shape, dtype, reader):
    path = tmp_path / "empty.tif"
    with pytest.warns(UserWarning):
        tifffile.imwrite(path, np.zeros(shape, dtype))
    with pytest.raises(InputError, match="is empty") as err:
        reader(path)
    assert err.value.path == str(path) and "\n" not in str(err.value)
    if reader is read_image:
        with pytest.raises(InputError, match="is empty"):
            image_size(path)


def test_empty_npy_label_map_is_refused(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((0, 0), np.int32))
    with pytest.raises(InputError, match="label map is empty") as err:
        read_label_image(path)
    assert err.value.path == str(path)


# --- catalog entries ---------------------------------------------------------------------------------------

def _entry(tmp_path, **entry):
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"mine": {"title": "t", **entry}}))
    return path


def test_catalog_refuses_two_files_of_one_name(tmp_path):
    files = [{"url": "http://x/a.zip", "filename": "a.zip"}, {"url": "http://y/a.zip", "filename": "a.zip"}]
    path = _entry(tmp_path, files=files)
    with pytest.raises(InputError, match=r"dataset 'mine'.*two files named 'a\.zip'") as err:
        load_catalog(path)
    assert err.value.path == str(path)
    files[1]["filename"] = "A.ZIP"  # the same file on a case-insensitive file system
    with pytest.raises(InputError, match="two files named"):
        load_catalog(_entry(tmp_path, files=files))


def test_catalog_format_must_be_a_reader_or_null(tmp_path):
    path = _entry(tmp_path, format="pannukee")
    with pytest.raises(InputError, match="unknown data format 'pannukee'") as err:
        load_catalog(path)
    assert err.value.path == str(path)
    assert load_catalog(_entry(tmp_path, format=None))["mine"].format is None
    assert load_catalog(_entry(tmp_path, format="folder"))["mine"].format == "folder"


def test_a_split_folder_without_its_labels_is_named_not_dropped(tmp_path):
    """Second probe: a split folder that lost labels.npz (or has a folder in its place) disappeared from the
    dataset's splits without a word."""
    from cellprobe.data import open_dataset
    from cellprobe.data.fixtures import synthetic_set, write_patches

    root = tmp_path / "ds"
    for split in ("train", "test"):
        write_patches(root / split, *synthetic_set(2, size=32), ["a", "b"], ["s1", "s2"])
    (root / "test" / "labels.npz").unlink()
    with pytest.raises(InputError, match=r"is missing: the split folder .test. has patch_info\.csv and images") as err:
        open_dataset(root, format="patches", split="train")
    assert err.value.path == str(root / "test" / "labels.npz")
    (root / "test" / "labels.npz").mkdir()
    with pytest.raises(InputError, match="is a folder, not a file"):
        open_dataset(root, format="patches", split="train")


def test_an_empty_source_image_is_refused_naming_the_row(tmp_path):
    from cellprobe.data import open_dataset
    from cellprobe.data.fixtures import synthetic_set, write_patches

    folder = tmp_path / "ds" / "test"
    write_patches(folder, *synthetic_set(2, size=32), ["a", "b"], ["s1", "s2"])
    listing = folder / "patch_info.csv"
    lines = listing.read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:2]) + ","
    listing.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="empty source_image") as err:
        open_dataset(tmp_path / "ds", format="patches", split="test")
    assert "row" in err.value.path
