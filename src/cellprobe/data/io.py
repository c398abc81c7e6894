"""Reading the files of the released formats, turning every failure into one :class:`InputError` line.

Readers call these instead of ``np.load`` / ``PIL.Image.open`` directly so that a missing, truncated or corrupt
file always names itself and the problem, never a library traceback.

Images are checked from their header before any pixel is decoded:

- size: at most :data:`MAX_IMAGE_PIXELS` (8192 × 8192 = 67,108,864 pixels) per image or label map. That is
  16 times the largest image of any release read here (CytoDArk0 at 40×, 2048²; CoNSeP and MoNuSeg are 1000²,
  patch releases 256²) and about 200 MB as RGB uint8 (270 MB more for its int32 instance map). The readers and
  ``cellprobe predict`` read images through these functions; whole slides are not, so cut a larger image into
  tiles first. A file declaring more pixels (a "decompression bomb") is refused with one line naming it and
  the limit, before anything is allocated (below Pillow's own warning threshold, which is thus never hit).
- depth: images must be 8 bits per channel. 16-bit PNGs and TIFFs alike are refused, never rescaled or
  truncated (convert them to 8-bit yourself, choosing the mapping). Label maps keep their stored integer type.

Paths read from a dataset's own files (a CSV listing patches, say) go through :func:`listed_name`, which refuses
a name that would leave the dataset's folder; the files a reader then opens per sample go through
:func:`inside_dataset`, which refuses one that leaves the dataset's folder once links are resolved; so do the
layout's own files (patch lists, label archives, ``dataset.yaml``: :func:`dataset_file`). A stem with
several files (``p08.png`` and ``p08.jpg``) is refused by :func:`find_with_suffix`, not decided by suffix order.
CSV tables go through :func:`read_csv_rows` (or :func:`read_table`, a DataFrame of it), which refuses a column
named twice and rows of another width than the header (pandas would rename the one and shift the other).
"""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cellprobe.errors import InputError, not_a_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
LABEL_SUFFIXES = (".tif", ".tiff", ".png", ".npy")

#: The most pixels (height × width) of one image or label map that is decoded: 8192² (see the module docstring).
MAX_IMAGE_PIXELS = 8192 * 8192
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # TIFF and BigTIFF, either byte order


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file, else an InputError saying which file of the layout is missing (or what
    is there instead: a folder, a device or pipe)."""
    problem = not_a_file(path)
    if problem == "is a folder, not a file":
        raise InputError(path, f"is a folder, not the {what}")
    if problem in ("no such file", "is a link to nothing"):
        raise InputError(path, f"missing {what}" + (" (a link to nothing)" if path.is_symlink() else ""))
    if problem is not None:
        raise InputError(path, f"{problem}, not the {what}")
    return path


def control_character(text: str) -> str | None:
    """The first control character or line/paragraph separator in ``text`` (None: none): a name holding one
    could not be shown on one line."""
    return next((c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)


def refuse_control(value: str, where: str | Path, what: str) -> None:
    """A name read from a table with a control character in it (a quoted line break, a tab) is refused: no
    file is called so, and the name could not be shown on one line."""
    hidden = control_character(value)
    if hidden is not None:
        raise InputError(where, f"{what} {value!r} holds the control character {hidden!a}")


def listed_name(name: str, folder: Path, root: Path, where: str | Path) -> str:
    """``name``, read from one of a dataset's own files (``where``: that file and its row), checked to stay
    inside the dataset folder ``root`` once joined to ``folder``; otherwise an InputError naming ``where``.

    Refused: an empty name, a NUL or other control character (a line break), an absolute path or drive, and any ``..`` part (``/`` or ``\\``
    separated), then anything whose normalised absolute path is not inside ``root``: the text of a listing
    can never steer a read outside the dataset. Links are not resolved here (the name's text is checked); the
    readers check the file they open with :func:`inside_dataset`, which does resolve them. Downloaded archives
    holding links are refused when unpacked (:mod:`cellprobe.data.download`).
    """
    if not name or not name.strip():
        raise InputError(where, "empty name")
    if "\0" in name:
        raise InputError(where, f"name {name!r} holds a NUL character")
    refuse_control(name, where, "name")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or re.match(r"[A-Za-z]:/", posix.as_posix()) or ".." in posix.parts:
        raise InputError(where, f"name '{name}' leaves the dataset folder {root} (no absolute paths or '..')")
    target = Path(os.path.normpath(Path(folder).absolute() / posix))
    if not target.is_relative_to(Path(os.path.normpath(Path(root).absolute()))):
        raise InputError(where, f"name '{name}' lies outside the dataset folder {root}")
    return name


def inside_dataset(path: Path, root: Path, where: str | Path) -> Path:
    """``path`` (a file a reader is about to open) if, with every link resolved, it lies inside the dataset folder
    ``root`` (resolved too); otherwise an InputError naming ``where`` (the file, or the listing row that named
    it). Like a listed name, a link cannot steer a read outside the dataset: link the whole dataset folder
    instead, or copy the file in."""
    real, base = Path(path).resolve(), Path(root).resolve()
    if not real.is_relative_to(base):
        raise InputError(where, f"{path} is a link leading outside the dataset folder {root} (to {real}): files "
                                "of a dataset stay inside its folder")
    return path


def refuse_output_inside(out: str | Path, dataset: str | Path) -> None:
    """An InputError naming ``out`` when results would go into the dataset folder ``dataset`` (or below it): a
    dataset is only read, and results there could replace its files or be read as part of it next time."""
    out, dataset = Path(out), Path(dataset)
    if dataset.is_dir() and out.resolve().is_relative_to(dataset.resolve()):
        where = "is" if out.resolve() == dataset.resolve() else "is inside"
        raise InputError(out, f"{where} the dataset folder {dataset}, which the command reads: results are not "
                              "written into their input; give a path outside it")


def dataset_file(path: Path, root: Path, what: str) -> Path:
    """``path``, a file of the dataset's layout in the dataset folder ``root`` (a patch list, a label archive, a
    ``dataset.yaml``, an array file): :func:`require_file`, then :func:`inside_dataset` naming the file. Every
    file a reader opens goes through this or :func:`inside_dataset`, so no link leads a read outside the dataset."""
    require_file(path, what)
    return inside_dataset(path, root, path)


def read_csv_rows(path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file, each field a string as written. Refused, naming the file or row: a
    column named twice in the header (which one holds the data would be a guess), a row with another number of
    fields than the header (pandas would take an extra first field as the row's index and shift the rest), an
    empty row before the last data row (its line number would no longer match), an empty file."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"unreadable {what} ({str(exc).splitlines()[0]})") from None
    while lines and not any(lines[-1]):
        lines.pop()  # trailing empty lines
    if not lines:
        raise InputError(path, f"empty {what} (no header)")
    header, rows = lines[0], lines[1:]
    for j, column in enumerate(header):
        if column in header[:j]:
            raise InputError(path, f"column '{column}' appears twice in the header (columns {header.index(column) + 1} "
                                   f"and {j + 1}): which one holds the data would be a guess; keep one")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            problem = ("empty row" if not any(row) else
                       f"{len(row)} field{'s' if len(row) != 1 else ''}, the header has {len(header)}")
            if i == len(rows) - 1 and 0 < len(row) < len(header):
                problem += " (a truncated file?)"
            raise InputError(csv_row(path, i), problem)
    return header, rows


def read_table(path: Path, what: str) -> Any:
    """A CSV file (:func:`read_csv_rows`, with its checks) as a pandas DataFrame of strings: no value is parsed
    or turned into NaN."""
    import pandas as pd

    header, rows = read_csv_rows(path, what)
    return pd.DataFrame(rows, columns=header, dtype=str)


def plain_name(value: str, where: str | Path, what: str) -> str:
    """``value`` (a patch or source image name read from a table) if it is not empty and has no whitespace
    around it: ``img0`` and ``img0 `` would be two names, so two source images."""
    if not value.strip():
        raise InputError(where, f"empty {what}")
    refuse_control(value, where, what)
    if value != value.strip():
        raise InputError(where, f"{what} '{value}' has surrounding whitespace: '{value.strip()}' and '{value}' would "
                                "be two different names; remove the spaces")
    return value


def csv_row(path: Path, row: int) -> str:
    """How an error names data row ``row`` (0-based, header not counted) of the CSV file ``path``."""
    return f"{path} row {row} (line {row + 2})"


def load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    """A ``.npy`` array, memory-mapped by default (a PanNuke fold is gigabytes: never read it whole per sample).

    Pickled (object) arrays are refused: unpickling a downloaded file can run code.
    """
    require_file(path, "array file")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:  # truncated (mmap length > file size), bad magic, pickled objects
        text = str(exc).splitlines()[0]
        if "pickle" in text.lower() or "python objects" in text.lower():
            raise InputError(path, "holds pickled Python objects; refusing to unpickle (store a plain array)") from None
        raise InputError(path, f"truncated or corrupt .npy file ({text})") from None
    except (OSError, EOFError) as exc:
        raise InputError(path, f"cannot read .npy file ({exc})") from None
    except (OverflowError, MemoryError) as exc:  # a header declaring a negative or impossibly large shape
        raise InputError(path, f"corrupt .npy header ({type(exc).__name__}: {exc})") from None


def npz_member_names(path: Path) -> list[str]:
    """The names of the arrays of a ``.npz`` archive (``.npy`` dropped), from its directory only. A member that
    is no ``.npy`` array, or an array stored twice, is refused: numpy would hand back raw bytes for the one, and
    silently the last of the two for the other."""
    require_file(path, "label archive")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(path, f"truncated or corrupt .npz archive ({str(exc).splitlines()[0]})") from None
    names: list[str] = []
    for member in members:
        if not member.endswith(".npy"):
            raise InputError(path, f"holds member '{member}', which is not an array (.npy): not an .npz numpy "
                                   "writes; save the arrays with numpy.savez_compressed")
        if member.removesuffix(".npy") in names:
            raise InputError(path, f"holds array '{member.removesuffix('.npy')}' twice: which one is meant is "
                                   "unknown; save the arrays again, once each")
        names.append(member.removesuffix(".npy"))
    return names


def npz_member_shape(path: Path, key: str) -> tuple[int, ...]:
    """The shape of one array of a ``.npz`` archive, from its header (nothing is decompressed beyond it)."""
    require_file(path, "label archive")
    try:
        names = npz_member_names(path)
        with zipfile.ZipFile(path) as archive:
            if key not in names:
                raise InputError(path, f"has no array '{key}' (has: {', '.join(names) or 'none'})")
            with archive.open(f"{key}.npy") as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, _ = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, _ = np.lib.format.read_array_header_2_0(member)
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(path, f"truncated or corrupt .npz archive ({str(exc).splitlines()[0]})") from None
    return tuple(int(s) for s in shape)


def load_npz_member(path: Path, key: str) -> np.ndarray:
    """One array of a (compressed) ``.npz`` archive, read whole (compressed members cannot be memory-mapped)."""
    npz_member_names(path)  # arrays only, each once
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise InputError(path, f"has no array '{key}' (has: {', '.join(archive.files) or 'none'})")
            return archive[key]
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error, OverflowError,
            MemoryError) as exc:
        raise InputError(path, f"truncated or corrupt .npz archive ({str(exc).splitlines()[0]})") from None


def check_pixels(where: str | Path, height: int, width: int, what: str = "image") -> None:
    """Refuse an image or label map of more than :data:`MAX_IMAGE_PIXELS` pixels (one line naming ``where``)."""
    if height * width > MAX_IMAGE_PIXELS:
        raise InputError(where, _too_large(f"{height}×{width} = {height * width:,} pixels", what))


def check_not_empty(where: str | Path, shape: tuple[int, ...], what: str = "image") -> None:
    """Refuse an image or label map with no pixels (a 0×0 or 0×N file), one line naming ``where``."""
    if any(int(s) == 0 for s in shape):
        raise InputError(where, f"{what} is empty (size {'×'.join(str(int(s)) for s in shape)})")


def _single_frame(path: Path, frames: int, what: str) -> None:
    """Refuse an animated or multi-page file: only its first frame would be read, silently."""
    if frames != 1:
        raise InputError(path, f"{what} has {frames} frames (animated or multi-page); expected a single image")


def _too_large(size: str, what: str = "image") -> str:
    side = int(MAX_IMAGE_PIXELS ** 0.5)
    return (f"{what} of {size} is over the limit of {MAX_IMAGE_PIXELS:,} pixels ({side}×{side}) per image; "
            "cut it into tiles")


def _depth_problem(bits: int) -> str:
    return (f"image is {bits} bits per channel (uint{bits}, expected uint8 RGB): refused rather than rescaled; "
            "convert it to 8-bit first")


def _opaque_rgb(arr: np.ndarray, where: str) -> np.ndarray:
    """RGB from RGB or fully opaque RGBA (CoNSeP's PNGs carry an all-255 alpha); anything else is refused."""
    if arr.ndim == 3 and arr.shape[2] == 4:
        if arr.dtype == np.uint8 and np.all(arr[..., 3] == 255):
            return np.ascontiguousarray(arr[..., :3])
        if arr.dtype == np.uint8:
            raise InputError(where, "image has a non-opaque alpha channel; expected RGB")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(where, f"image is not RGB (shape {arr.shape})")
    if arr.dtype == np.uint16:
        raise InputError(where, _depth_problem(16))
    if arr.dtype != np.uint8:
        raise InputError(where, f"image is {arr.dtype}, expected uint8 RGB")
    return arr


def _tiff_colours(path: Path, page: Any, palette: bool) -> None:
    """Refuse a TIFF image whose samples are not RGB (the 4th sample of CMYK was taken for alpha), naming what
    they are: colours are not converted, as no conversion of CMYK or greyscale gives the stained slide."""
    import tifffile

    kind = page.photometric
    if palette or kind == tifffile.PHOTOMETRIC.RGB:
        return
    if kind == tifffile.PHOTOMETRIC.YCBCR and page.compression in (tifffile.COMPRESSION.JPEG,
                                                                    tifffile.COMPRESSION.OJPEG):
        return  # JPEG tiles: the decoder gives RGB
    name = {tifffile.PHOTOMETRIC.SEPARATED: "CMYK (separated)", tifffile.PHOTOMETRIC.MINISBLACK: "greyscale",
            tifffile.PHOTOMETRIC.MINISWHITE: "greyscale (white is zero)"}.get(kind, getattr(kind, "name", str(kind)))
    raise InputError(path, f"image is {name}, not RGB (TIFF photometric {getattr(kind, 'name', kind)}); "
                           "expected RGB: convert it first")


def _palette_rgb(path: Path, indices: np.ndarray, colormap: np.ndarray | None) -> np.ndarray:
    """The RGB colours a palette TIFF shows. Its colour map holds 16-bit values: each must be an 8-bit value
    scaled by 257 (as writers store 8-bit palettes), else the colours would be rounded, and that is refused."""
    if colormap is None or colormap.ndim != 2 or colormap.shape[0] != 3 or int(indices.max()) >= colormap.shape[1]:
        raise InputError(path, "palette image without a colour map for every index; expected RGB")
    if np.any(colormap % 257):
        raise InputError(path, "palette image with 16-bit colours; convert it to 8-bit RGB first")
    return np.ascontiguousarray((colormap // 257).astype(np.uint8)[:, indices].transpose(1, 2, 0))


def _open_pil(path: Path, what: str) -> Any:
    """A Pillow image opened lazily (header only), its size checked against :data:`MAX_IMAGE_PIXELS`."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow warns from 89 Mpx; the limit here is lower and says more
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow's own limit (179 Mpx) hit before the header is seen
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise InputError(path, _too_large(f"{int(found.group(1)):,} pixels" if found else "more pixels", what)) from None
    except Exception as exc:  # Pillow raises many types for corrupt files
        raise InputError(path, f"unreadable or truncated {what} ({exc})") from None
    try:
        check_not_empty(path, (int(img.height), int(img.width)), what)
        check_pixels(path, int(img.height), int(img.width), what)
        _single_frame(path, int(getattr(img, "n_frames", 1)), what)
    except InputError:
        img.close()
        raise
    return img


def _png_bit_depth(path: Path) -> int:
    """Bits per sample of a PNG, from its IHDR chunk (Pillow decodes 16-bit RGB as 8-bit without saying so)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise InputError(path, "unreadable PNG header")
    return head[24]


def _pil_rgb(path: Path, decode: bool) -> tuple[int, int] | np.ndarray:
    img = _open_pil(path, "image")
    with img:  # depth and mode are in the header: checked before decoding, and by image_size too
        bits = _png_bit_depth(path) if img.format == "PNG" else 8
        if bits > 8:
            raise InputError(path, _depth_problem(bits))
        if img.mode not in ("RGB", "RGBA", "P", "PA"):
            held = _PIL_MODES.get(img.mode)
            raise InputError(path, f"image is {held}, not RGB (mode {img.mode}); convert it to RGB first" if held
                             else f"image is not RGB (mode {img.mode})")
        if not decode:
            return int(img.height), int(img.width)
        try:
            img.load()
            keyed = img.mode == "RGB" and "transparency" in img.info
            if img.mode in ("P", "PA") or keyed:  # the colours shown, exactly; a colour key as alpha
                img = img.convert("RGBA" if _pil_transparent(img) else "RGB")
            pixels = np.asarray(img)
        except Exception as exc:  # truncated data, decoder errors
            raise InputError(path, f"unreadable or truncated image ({exc})") from None
    if keyed and not np.all(pixels[..., 3] == 255):
        raise InputError(path, "image has a colour key (PNG tRNS) that makes some pixels transparent; expected "
                               "opaque RGB")
    return pixels


#: what Pillow's modes that are not RGB hold, for the message refusing them
_PIL_MODES = {"L": "greyscale", "LA": "greyscale with alpha", "1": "black and white", "CMYK": "CMYK",
              "I;16": "16-bit greyscale", "I": "32-bit greyscale", "F": "floating point", "YCbCr": "YCbCr",
              "LAB": "Lab", "HSV": "HSV"}


def _pil_transparent(img: Any) -> bool:
    """Whether a Pillow image may hide pixels: an alpha channel, or a colour key (PNG tRNS) on RGB or a palette."""
    return img.mode in ("RGBA", "PA") or "transparency" in img.info


def _tiff(path: Path, what: str, decode: bool, rgb: bool) -> tuple[int, int] | np.ndarray:
    """Header checks (size; for an RGB image also the sample type) of a TIFF, then its first series."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if rgb:  # an RGB image is one page; more would be read as its first page only
                _single_frame(path, len(tif.pages), what)
            series = tif.series[0]
            shape, dtype = tuple(int(s) for s in series.shape), np.dtype(series.dtype)
            # an RGB image stored planar (PlanarConfiguration=2): samples first, read as the same (H, W, 3) image
            planar = rgb and len(shape) == 3 and series.axes in ("SYX", "CYX") and shape[0] in (3, 4)
            if planar:
                shape = (*shape[1:], shape[0])
            if len(shape) < 2:
                raise InputError(path, f"{what} has shape {shape}; expected an image")
            check_not_empty(path, shape, what)
            if len(shape) == 2 or (len(shape) == 3 and shape[2] <= 4):  # one plane, maybe with channels
                check_pixels(path, shape[0], shape[1], what)
            else:  # a stack of planes (refused later as not 2-D / not RGB): count every pixel first
                check_pixels(path, int(np.prod(shape[:-1])), shape[-1], what)
            page = tif.pages[0]
            palette = rgb and page.photometric == tifffile.PHOTOMETRIC.PALETTE and len(shape) == 2
            if rgb:
                _tiff_colours(path, page, palette)
            if rgb and not palette and dtype == np.uint16:
                raise InputError(path, _depth_problem(16))
            if rgb and not palette and dtype != np.uint8:
                raise InputError(path, f"image is {dtype}, expected uint8 RGB")
            if not decode:
                return shape[0], shape[1]
            pixels = np.asarray(series.asarray())
            if palette:
                return _palette_rgb(path, pixels, page.colormap)
            return np.ascontiguousarray(np.moveaxis(pixels, 0, -1)) if planar else pixels
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise InputError(path, f"unreadable or truncated TIFF ({exc})") from None


def holds_tiff(path: Path) -> bool:
    """Whether the file is a TIFF (or BigTIFF) by its first bytes, whatever its name: each file goes to the
    decoder made for its contents (Pillow read a 16-bit RGB TIFF named .png as 8-bit, without a word)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in _TIFF_MAGIC
    except OSError:  # unreadable: the decoder that opens it next says so, naming the file
        return False


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image from PNG/JPEG/BMP (Pillow) or TIFF (tifffile), checked from its header first (size
    limit, 8 bits per channel, RGB) and decoded only then. A palette image is read as the RGB colours it shows;
    transparency (an alpha channel or a PNG colour key) must be opaque wherever it is."""
    require_file(path, "image file")
    if holds_tiff(path):
        arr = _tiff(path, "image", decode=True, rgb=True)
    else:
        arr = _pil_rgb(path, decode=True)
    assert isinstance(arr, np.ndarray)
    return _opaque_rgb(arr, str(path))


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels; more than :data:`MAX_IMAGE_PIXELS`,
    more than 8 bits per channel, a mode other than RGB(A) or a non-uint8 TIFF are refused here already (only
    the alpha check of :func:`read_image` waits for the pixels)."""
    require_file(path, "image file")
    if holds_tiff(path):
        size = _tiff(path, "image", decode=False, rgb=True)
    else:
        size = _pil_rgb(path, decode=False)
    assert isinstance(size, tuple)
    return size


def check_image(path: Path) -> tuple[int, int]:
    """Everything :func:`read_image` would refuse, checked now (before a command writes anything): the header
    as :func:`image_size` does, and for an image with an alpha channel its pixels too (a non-opaque alpha is
    refused; only those images are decoded here)."""
    size = image_size(path)
    if holds_tiff(path):
        import tifffile

        with tifffile.TiffFile(path) as tif:  # readable: image_size opened it
            alpha = 4 in tif.series[0].shape  # (H, W, 4) or planar (4, H, W); a palette is opaque
    else:
        with _open_pil(path, "image") as img:
            alpha = _pil_transparent(img)
    if alpha:
        read_image(path)
    return size


def orientation_tag(path: Path) -> int:
    """The orientation a camera or scanner recorded (EXIF, or the TIFF tag: 1 = pixels stored upright; 0: none
    recorded). cellprobe reads pixels as stored, as the training data is read, so results follow the stored
    order whatever this says."""
    if holds_tiff(path):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                tag = tif.pages[0].tags.get(274)
                return int(tag.value) if tag is not None else 0
        except Exception:  # damaged: the pixel read says what is wrong
            return 0
    with _open_pil(path, "image") as img:
        try:
            return int(img.getexif().get(0x0112, 0) or 0)
        except Exception:  # EXIF data past a truncation, or damaged: the pixel read says what is wrong
            return 0


def read_label_image(path: Path, what: str = "label map", grey_rgb: bool = False) -> np.ndarray:
    """A 2-D label map (instance or class ids) from TIFF, PNG or ``.npy``; dtype is kept as stored. The size
    limit (:data:`MAX_IMAGE_PIXELS`) is checked from the header before the map is read. ``grey_rgb``: an RGB or
    RGBA file whose colour channels are equal everywhere (and alpha, if any, opaque) is read as that one channel:
    a black-and-white mask saved by an image editor is often stored so (ids never are), and a palette image as
    the greys it shows (its indices, which editors order as they like, would invert a mask whose index 0 is
    white). Without ``grey_rgb`` a palette image's indices are its ids, as label maps are stored (PASCAL VOC)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        mapped = load_npy(path, mmap=True)
        check_not_empty(path, mapped.shape, what)
        if mapped.ndim >= 2:
            check_pixels(path, int(np.prod(mapped.shape[:-1])), int(mapped.shape[-1]), what)
        arr = np.array(mapped)
    elif holds_tiff(require_file(path, f"{what} file")):
        arr = _tiff(path, what, decode=True, rgb=False)
    else:
        require_file(path, f"{what} file")
        img = _open_pil(path, f"{what} image")
        with img:
            try:
                img.load()
                if grey_rgb and img.mode in ("P", "PA"):
                    img = img.convert("RGBA" if _pil_transparent(img) else "RGB")
                arr = np.asarray(img)
            except Exception as exc:
                raise InputError(path, f"unreadable or truncated {what} image ({exc})") from None
    assert isinstance(arr, np.ndarray)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if grey_rgb and arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = _grey_of(path, arr, what)
    if arr.ndim != 2:
        raise InputError(path, f"{what} must be 2-D (one channel), got shape {arr.shape}")
    return arr


def _grey_of(path: Path, arr: np.ndarray, what: str) -> np.ndarray:
    """The one channel of an RGB(A) array whose colours are grey and alpha opaque, else a refusal naming why."""
    if arr.shape[2] == 4:
        opaque = np.iinfo(arr.dtype).max if arr.dtype.kind in "iu" else 1.0
        if np.any(arr[..., 3] != opaque):
            raise InputError(path, f"{what} has transparent pixels: save it as one channel (non-zero = "
                                   "tissue), without transparency")
    if np.any(arr[..., 0] != arr[..., 1]) or np.any(arr[..., 0] != arr[..., 2]):
        raise InputError(path, f"{what} is in colour: save it as one channel or grey (non-zero = tissue)")
    return arr[..., 0]


def read_mat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays of a MATLAB ``.mat`` file (CoNSeP labels); their declared sizes are checked against
    :data:`MAX_IMAGE_PIXELS` before they are read."""
    import scipy.io

    require_file(path, "label file")
    try:
        declared = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
        for k in keys:
            if k in declared and len(declared[k]) >= 2:
                check_pixels(path, int(np.prod(declared[k][:-1])), int(declared[k][-1]), f"'{k}'")
        data = scipy.io.loadmat(path)
    except InputError:
        raise
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError for corrupt files
        raise InputError(path, f"unreadable .mat file ({str(exc).splitlines()[0]})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise InputError(path, f"has no {', '.join(repr(k) for k in missing)}")
    return {k: np.asarray(data[k]) for k in keys}


def find_with_suffix(folder: Path, stem: str, suffixes: tuple[str, ...], where: str | Path | None = None) -> Path | None:
    """The file ``folder/stem.<suffix>`` for the suffix that exists (either case), else None. Several files of
    that stem (``p08.png`` and ``p08.jpg``) are refused naming ``where`` (default: ``folder``): which one is
    meant would be a guess."""
    found: list[Path] = []
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file() and not any(candidate.samefile(f) for f in found):  # one file on a case-blind disk
                found.append(candidate)
    if len(found) > 1:
        raise InputError(where or folder, f"'{stem}' has several files in {folder} ({', '.join(p.name for p in found)}): "
                                          "which one is meant would be a guess; keep one")
    return found[0] if found else None
