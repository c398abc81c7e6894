"""Bad input that an outside probe found accepted, mis-read or turned into a traceback: each is now one
InputError naming the file (and row or sample), across every reader with the same kind of input."""

from __future__ import annotations

import re
import struct
import warnings
import zlib

import numpy as np
import pytest
import yaml
from PIL import Image

from cellprobe.data import fixtures, open_dataset
from cellprobe.data.catalog import DatasetSource, RemoteFile, get_source, load_catalog
from cellprobe.data.check import check_path
from cellprobe.data.download import download_dataset
from cellprobe.data.io import MAX_IMAGE_PIXELS, image_size, listed_name, read_image, read_label_image
from cellprobe.data.splits import read_split_file
from cellprobe.errors import InputError


def _patches(tmp_path, synth, n=6):
    images, inst, cls = synth
    names = [f"p{i}" for i in range(n)]
    return fixtures.write_patches(tmp_path / "ds" / "train", images[:n], inst[:n], cls[:n], names,
                                  [f"s{i // 3}" for i in range(n)])


def _set_column(folder, column, row, value):
    path = folder / "patch_info.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


# --- 1. names read from a dataset's own files never leave it ------------------------------------------------

def test_patch_list_row_leaving_the_dataset_is_refused(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(synth[0][2]).save(outside / "x.png")  # a readable image of the right size: read before
    _set_column(folder, "patch", 2, "../../../outside/x")
    with pytest.raises(InputError) as err:
        open_dataset(folder.parent, split="train")
    assert err.value.path == f"{folder / 'patch_info.csv'} row 2 (line 4)"
    assert "leaves the dataset folder" in err.value.problem


@pytest.mark.parametrize("name", ["/etc/passwd", "..\\..\\x", "sub/../../x", "C:/x", "", "a\0b"])
def test_listed_names_that_could_leave_are_refused(tmp_path, name):
    with pytest.raises(InputError, match=r"leaves the dataset folder|empty name|NUL") as err:
        listed_name(name, tmp_path / "images", tmp_path, "list.csv row 0 (line 2)")
    assert err.value.path == "list.csv row 0 (line 2)"
    assert listed_name("sub/p.1", tmp_path / "images", tmp_path, "x") == "sub/p.1"


def test_cytodark0_folds_row_leaving_the_dataset_is_refused(tmp_path):
    root = fixtures.write_cytodark0(tmp_path / "c0", [0, 1, 2], size=64)
    folds = root / "cytoDArk0" / "20x" / "1024x1024" / "folds.csv"
    folds.write_text(folds.read_text().replace("species1_region1", "../../../../outside"))
    with pytest.raises(InputError, match="leaves the dataset folder") as err:
        open_dataset(root, crop="none")
    assert err.value.path == f"{folds} row 1 (line 3)"


# --- 2. one patch, one row -----------------------------------------------------------------------------------

def test_patch_listed_twice_is_refused(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    _set_column(folder, "patch", 4, "p1")  # p1 against label rows 1 and 4
    with pytest.raises(InputError, match=r"patch 'p1' is listed twice \(also row 1\)") as err:
        open_dataset(folder)
    assert err.value.path == f"{folder / 'patch_info.csv'} row 4 (line 6)"
    _set_column(folder, "patch", 4, "./p1")  # the same file under another spelling
    with pytest.raises(InputError, match=r"row 4 .*image of row 1 again"):
        open_dataset(folder)


def test_patch_index_repeated_names_its_row(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    _set_column(folder, "index", 3, "2")
    with pytest.raises(InputError, match=r"index '2', expected 3 \(index 2 is already row 2\)") as err:
        open_dataset(folder)
    assert err.value.path.endswith("patch_info.csv row 3 (line 5)")


def test_listed_twice_siblings(tmp_path, synth, conic_root):
    info = conic_root / "patch_info.csv"
    lines = info.read_text().splitlines()
    lines[4] = lines[1]
    info.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"row 3 \(line 5\): patch 'src0-0000' is listed twice \(also row 0\)"):
        open_dataset(conic_root)

    root = fixtures.write_cytodark0(tmp_path / "c0", [0, 1, 2], size=64)
    folds = root / "cytoDArk0" / "20x" / "1024x1024" / "folds.csv"
    folds.write_text(folds.read_text() + "species0_region0,2\n")
    with pytest.raises(InputError, match=r"row 3 \(line 5\): img_id 'species0_region0' is listed twice"):
        open_dataset(root)

    images, inst, _ = synth
    folder = fixtures.write_folder(tmp_path / "f", images, inst, None, [f"i{k}" for k in range(6)],
                                   sources=[f"s{k}" for k in range(6)])
    (folder / "sources.csv").write_text((folder / "sources.csv").read_text() + "i2,s9\n")
    with pytest.raises(InputError, match=r"sources\.csv row 6 \(line 8\): name 'i2' is listed twice"):
        open_dataset(folder)
    (folder / "sources.csv").unlink()
    Image.fromarray(images[0]).save(folder / "images" / "i0.bmp")
    with pytest.raises(InputError, match=r"i0\.png: same sample name 'i0' as i0\.bmp"):
        open_dataset(folder)

    split = tmp_path / "split.csv"
    split.write_text("patch,fold\np0,a\np1,b\np0,b\n")
    with pytest.raises(InputError, match=r"split\.csv row 2 \(line 4\): patch 'p0' is listed in fold 'b' here and "
                                         r"in fold 'a' at row 0"):
        read_split_file(split, ["p0", "p1"])


# --- 3. sources.csv lists exactly the images -----------------------------------------------------------------

def test_sources_row_without_image_is_refused(tmp_path, synth):
    images, inst, _ = synth
    names = [f"i{k}" for k in range(6)]
    folder = fixtures.write_folder(tmp_path / "f", images, inst, None, names, sources=[f"s{k // 2}" for k in range(6)])
    (folder / "sources.csv").write_text((folder / "sources.csv").read_text().replace("i3,", "i33,"))
    with pytest.raises(InputError, match=r"no image 'i33' in .*images \(1 row\(s\) without an image\)") as err:
        open_dataset(folder)
    assert err.value.path == f"{folder / 'sources.csv'} row 3 (line 5)"
    (folder / "sources.csv").write_text("name,source\n" + "".join(f"{n},s\n" for n in names[:5]))
    with pytest.raises(InputError, match=r"sources\.csv: has no row for image i5\.png"):
        open_dataset(folder)
    (folder / "sources.csv").write_text("name,source\n" + "".join(f"{n},{'' if n == 'i1' else 's'}\n" for n in names))
    with pytest.raises(InputError, match=r"sources\.csv row 1 \(line 3\): empty source"):
        open_dataset(folder)


# --- 4. 16-bit images are refused alike ----------------------------------------------------------------------

def test_16bit_png_refused_like_16bit_tiff(tmp_path):
    import cv2
    import tifffile

    rgb16 = np.full((5, 6, 3), 1000, np.uint16)
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb16)
    cv2.imwrite(str(tmp_path / "rgba.png"), np.full((5, 6, 4), 1000, np.uint16))
    tifffile.imwrite(tmp_path / "rgb.tif", rgb16)
    problems = set()
    for name in ("rgb.png", "rgba.png", "rgb.tif"):
        with pytest.raises(InputError, match=r"16 bits per channel \(uint16, expected uint8 RGB\)") as err:
            read_image(tmp_path / name)
        assert err.value.path == str(tmp_path / name)
        problems.add(err.value.problem)
    assert len(problems) == 1
    cv2.imwrite(str(tmp_path / "inst.png"), np.arange(30, dtype=np.uint16).reshape(5, 6) * 1000)
    label = read_label_image(tmp_path / "inst.png")  # a 16-bit label map keeps its ids
    assert label.dtype == np.uint16 and int(label.max()) == 29000


# --- 5. a pixel limit, checked from the header ---------------------------------------------------------------

def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _tiff_header_only(width: int, height: int) -> bytes:
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8),
            (277, 3, 1), (278, 4, height), (279, 4, width * height)]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in tags) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


@pytest.mark.parametrize("side", [20000, 9000])  # past Pillow's own bomb error, and between its warning and ours
def test_oversized_images_refused_from_the_header(tmp_path, side):
    png, tif = tmp_path / "big.png", tmp_path / "big.tif"
    png.write_bytes(_png_header_only(side, side))
    tif.write_bytes(_tiff_header_only(side, side))
    for path, read in ((png, read_image), (png, image_size), (png, read_label_image), (tif, read_image),
                       (tif, image_size), (tif, read_label_image)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DecompressionBombWarning either
            with pytest.raises(InputError, match=f"over the limit of {MAX_IMAGE_PIXELS:,} pixels") as err:
                read(path)
        assert err.value.path == str(path)
    assert MAX_IMAGE_PIXELS >= 2048 * 2048  # CytoDArk0's 40× images, the largest a reader here takes


def test_oversized_image_in_a_folder_is_one_line(cli, tmp_path, synth):
    images, inst, _ = synth
    folder = fixtures.write_folder(tmp_path / "f", images, inst, None, [f"i{k}" for k in range(6)])
    (folder / "images" / "i3.png").write_bytes(_png_header_only(20000, 20000))
    rc, _, err = cli("data", "check", folder, "--format", "folder", "-o", "crop=tiled", "-o", "crop_size=32")
    assert rc == 2 and err.count("\n") == 1 and "i3.png" in err and "over the limit" in err


# --- 6. errors about a sample name its file ------------------------------------------------------------------

def test_mixed_size_patch_names_its_image_file(tmp_path, synth):
    folder = _patches(tmp_path, synth)
    Image.fromarray(np.zeros((80, 72, 3), np.uint8)).save(folder / "images" / "p1.png")
    ds = open_dataset(folder)
    with pytest.raises(InputError, match=r"image \(80, 72\) does not match its label maps") as err:
        ds[1]
    assert err.value.path == str(folder / "images" / "p1.png")
    report = check_path(folder.parent)
    refused = [a for a in report["splits"]["train"]["anomalies"] if a["fatal"]]  # (warnings aside)
    assert refused[0]["where"] == str(folder / "images" / "p1.png")


def test_sample_file_names_every_readers_file(tmp_path, synth, conic_root, pannuke_root):
    import tifffile

    images, inst, _ = synth
    folder = fixtures.write_folder(tmp_path / "f", images, inst, None, [f"i{k}" for k in range(6)])
    Image.fromarray(np.zeros((80, 72, 3), np.uint8)).save(folder / "images" / "i1.png")
    tifffile.imwrite(folder / "inst" / "i1.tif", np.zeros((80, 72), np.int32))
    mixed = open_dataset(folder)  # whole images of several sizes are valid samples; a consumer that needs one
    # size names the odd one by its file
    assert mixed[1].image.shape == (80, 72, 3) and mixed.sample_file(1) == str(folder / "images" / "i1.png")
    assert open_dataset(folder, crop="tiled", crop_size=32).sample_file(5) == f"{folder / 'images' / 'i1.png'}[y=0, x=32]"
    assert open_dataset(_patches(tmp_path, synth)).sample_file(-1) == str(tmp_path / "ds" / "train" / "images" / "p5.png")
    assert open_dataset(conic_root).sample_file(2) == f"{conic_root / 'images.npy'}[2]"
    assert open_dataset(pannuke_root, split="fold2").sample_file(1).endswith("fold2/images.npy[1]")


# --- 7. download names and root ------------------------------------------------------------------------------

def _catalog(tmp_path, names):
    path = tmp_path / "catalog.yaml"
    entry = {"title": "t", "files": [{"url": "http://127.0.0.1:9/x.zip", "filename": "x.zip"}]}
    path.write_text(yaml.safe_dump({n: entry for n in names}))
    return path


def test_dataset_names_are_plain_file_names(cli, tmp_path):
    catalog = _catalog(tmp_path, ["ok", "../../x"])
    rc, _, err = cli("data", "download", "ok", "--root", tmp_path / "root", "--catalog", catalog, "--retries", "0")
    assert rc == 2 and err.count("\n") == 1 and str(catalog) in err and "'../../x' is not a plain file name" in err
    catalog = _catalog(tmp_path, ["ok", "lizard.v2"])
    assert "lizard.v2" in load_catalog(catalog)  # a dot inside a name is fine, and not a nested key
    for name in ("../../x", "..", ".hidden", "a/b"):
        with pytest.raises(InputError, match="not a plain file name"):
            get_source(name, catalog)
        with pytest.raises(InputError, match="not a plain file name"):
            download_dataset(name, DatasetSource(title="t", files=[RemoteFile(url="http://x/y.zip", filename="y.zip")]),
                             tmp_path / "root")
    with pytest.raises(ValueError, match="filename"):
        RemoteFile(url="http://x/y", filename="..")
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_download_root_that_is_not_a_writable_folder_is_one_line(cli, tmp_path):
    catalog = _catalog(tmp_path, ["ok"])
    (tmp_path / "afile").write_text("x")
    (tmp_path / "gone").symlink_to(tmp_path / "missing")  # the eleventh probe: 'cannot create … (File exists)'
    for root, problem in ((tmp_path / "afile", "is a file"), (tmp_path / "afile" / "sub", "is a file"),
                          (tmp_path / "gone", "gone: is a link to"),
                          ("/proc/cellprobe-no-such-folder", "cannot create or write"),
                          ("/proc/self", "cannot create or write")):
        rc, _, err = cli("data", "download", "ok", "--root", root, "--catalog", catalog, "--retries", "0")
        assert rc == 2 and err.count("\n") == 1 and problem in err and "Traceback" not in err, err


@pytest.mark.parametrize("option, value", [("--timeout", "0"), ("--timeout", "-1"), ("--retries", "-1"),
                                           ("--timeout", "1e308")])  # the 28th probe: an OverflowError traceback
def test_download_option_errors_name_the_option(cli, tmp_path, option, value):
    catalog = _catalog(tmp_path, ["ok"])
    rc, _, err = cli("data", "download", "ok", "--root", tmp_path / "root", "--catalog", catalog, option, value)
    assert rc == 2 and err.count("\n") == 1 and f"error: {option}:" in err, err
    assert not (tmp_path / "root").exists()


# --- 8. an empty split -----------------------------------------------------------------------------------------

def test_empty_patches_split_reads_as_empty(tmp_path, synth):
    images, inst, cls = synth
    _patches(tmp_path, synth)
    empty = fixtures.write_patches(tmp_path / "ds" / "test", images[:0], inst[:0], cls[:0], [], [])
    ds = open_dataset(tmp_path / "ds", split="test")
    assert len(ds) == 0 and list(ds) == [] and ds.sources() == []
    assert ds.class_names == open_dataset(tmp_path / "ds", split="train").class_names
    report = check_path(tmp_path / "ds")
    assert report["splits"]["test"]["patches"] == 0 and report["splits"]["train"]["patches"] == 6
    np.savez_compressed(empty / "labels.npz", inst=np.zeros(0, np.int32), cls=np.zeros(0, np.uint8))  # np.stack([])
    assert len(open_dataset(tmp_path / "ds", split="test")) == 0
    np.savez_compressed(empty / "labels.npz", inst=np.zeros((1, 64, 64), np.int32), cls=np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(InputError, match=r"mismatched counts: 'inst' has 1 rows, patch_info\.csv 0"):
        open_dataset(tmp_path / "ds", split="test")


@pytest.mark.parametrize("kind", ["folder", "pipe", "link to nothing"])
def test_a_dataset_yaml_that_is_no_file_is_refused_not_skipped(tmp_path, synth, kind):
    """The twenty-second probe: dataset.yaml a folder or a pipe was skipped without a word, the data then
    read with numbered classes and no µm/px (train exit 0). A split file that is a pipe was called a folder."""
    import os

    _patches(tmp_path, synth)
    path = tmp_path / "ds" / "dataset.yaml"
    {"folder": path.mkdir, "pipe": lambda: os.mkfifo(path),
     "link to nothing": lambda: path.symlink_to(tmp_path / "ds" / "gone.yaml")}[kind]()
    problem = {"folder": "is a folder, not a file", "pipe": r"is not a regular file \(a device, pipe or socket\)",
               "link to nothing": "is a link to nothing"}[kind]
    with pytest.raises(InputError, match=f"{problem}: the dataset's classes and µm/px cannot be read") as err:
        open_dataset(tmp_path / "ds", split="train")
    assert err.value.path == str(path)

    if kind == "pipe":
        path.unlink()
        labels = tmp_path / "ds" / "train" / "labels.npz"
        labels.unlink()
        os.mkfifo(labels)
        with pytest.raises(InputError, match=r"is not a regular file .*: the split folder 'train' needs") as err:
            open_dataset(tmp_path / "ds", split="train")
        assert err.value.path == str(labels)


@pytest.mark.parametrize("damage", ["raw member", "array twice"])
def test_a_label_archive_numpy_would_misread_is_refused(tmp_path, synth, damage):
    """The twenty-third probe: a labels.npz holding a raw member 'inst' beside inst.npy was a traceback
    (numpy hands back bytes); inst.npy stored twice was read as the last copy without a word."""
    import io
    import zipfile

    folder = _patches(tmp_path, synth)
    labels = folder / "labels.npz"
    with zipfile.ZipFile(labels, "a") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate name
        if damage == "raw member":
            archive.writestr("inst", b"not an array")
        else:
            buf = io.BytesIO()
            np.save(buf, np.zeros((6, 64, 64), np.int32))
            archive.writestr("inst.npy", buf.getvalue())
    problem = ("holds member 'inst', which is not an array (.npy)" if damage == "raw member"
               else "holds array 'inst' twice")
    with pytest.raises(InputError, match=re.escape(problem)) as err:
        open_dataset(tmp_path / "ds", split="train")
    assert err.value.path == str(labels)
    with pytest.raises(InputError, match=re.escape(problem)):  # data check says the same
        check_path(tmp_path / "ds")


def test_an_image_name_that_is_not_utf8_is_refused_naming_it(tmp_path, synth):
    """The twenty-fourth probe's sibling: a folder dataset whose image name held bytes that are not UTF-8 could
    not go into a sample's name or any record."""
    import os

    images, inst, _ = synth
    root = fixtures.write_folder(tmp_path / "f", images[:2], inst[:2], None, ["a", "b"])
    for sub, suffix in (("images", ".png"), ("inst", ".tif")):
        found = next((root / sub).glob(f"b{suffix}*"))
        os.rename(found, os.fsencode(found.parent) + b"/b\xff" + os.fsencode(found.suffix))
    with pytest.raises(InputError, match="its name is not valid UTF-8") as err:
        open_dataset(root, format="folder")
    assert "b\\xff" in str(err.value.path)
