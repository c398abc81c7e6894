"""Reading the files of the released formats, turning every failure into one :class:`InputError` line.

Readers call these instead of ``np.load`` / ``PIL.Image.open`` directly so that a missing, truncated or corrupt
file always names itself and the problem, never a library traceback.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cellprobe.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
LABEL_SUFFIXES = (".tif", ".tiff", ".png", ".npy")


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else an InputError saying which file of the layout is missing."""
    if not path.is_file():
        raise InputError(path, f"missing {what}")
    return path


def load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    """A ``.npy`` array, memory-mapped by default (a PanNuke fold is gigabytes: never read it whole per sample).

    Pickled (object) arrays are refused: unpickling a downloaded file can run code.
    """
    require_file(path, "array file")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:  # truncated (mmap length > file size), bad magic, pickled objects
        text = str(exc).splitlines()[0]
        if "pickle" in text.lower():
            raise InputError(path, "holds pickled Python objects; refusing to unpickle (store a plain array)") from None
        raise InputError(path, f"truncated or corrupt .npy file ({text})") from None
    except (OSError, EOFError) as exc:
        raise InputError(path, f"cannot read .npy file ({exc})") from None


def load_npz_member(path: Path, key: str) -> np.ndarray:
    """One array of a (compressed) ``.npz`` archive, read whole (compressed members cannot be memory-mapped)."""
    require_file(path, "label archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise InputError(path, f"has no array '{key}' (has: {', '.join(archive.files) or 'none'})")
            return archive[key]
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(path, f"truncated or corrupt .npz archive ({str(exc).splitlines()[0]})") from None


def _opaque_rgb(arr: np.ndarray, where: str) -> np.ndarray:
    """RGB from RGB or fully opaque RGBA (CoNSeP's PNGs carry an all-255 alpha); anything else is refused."""
    if arr.ndim == 3 and arr.shape[2] == 4:
        if arr.dtype == np.uint8 and np.all(arr[..., 3] == 255):
            return np.ascontiguousarray(arr[..., :3])
        raise InputError(where, "image has a non-opaque alpha channel; expected RGB")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(where, f"image is not RGB (shape {arr.shape})")
    if arr.dtype != np.uint8:
        raise InputError(where, f"image is {arr.dtype}, expected uint8 RGB")
    return arr


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image from PNG/JPEG/BMP (Pillow) or TIFF (tifffile)."""
    require_file(path, "image file")
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = _read_tiff(path)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                if img.mode not in ("RGB", "RGBA"):
                    raise InputError(path, f"image is not RGB (mode {img.mode})")
                img.load()
                arr = np.asarray(img)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InputError(path, f"unreadable or truncated image ({exc})") from None
    return _opaque_rgb(arr, str(path))


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    require_file(path, "image file")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
            return int(shape[0]), int(shape[1])
        from PIL import Image

        with Image.open(path) as img:
            return int(img.height), int(img.width)
    except InputError:
        raise
    except Exception as exc:  # any decoder failure is bad input here
        raise InputError(path, f"unreadable image header ({exc})") from None


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise InputError(path, f"unreadable or truncated TIFF ({exc})") from None


def read_label_image(path: Path) -> np.ndarray:
    """A 2-D label map (instance or class ids) from TIFF, PNG or ``.npy``; dtype is kept as stored."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.asarray(load_npy(path, mmap=False))
    elif suffix in (".tif", ".tiff"):
        require_file(path, "label file")
        arr = _read_tiff(path)
    else:
        require_file(path, "label file")
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img.load()
                arr = np.asarray(img)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InputError(path, f"unreadable or truncated label image ({exc})") from None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(path, f"label map must be 2-D, got shape {arr.shape}")
    return arr


def read_mat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays of a MATLAB ``.mat`` file (CoNSeP labels)."""
    import scipy.io

    require_file(path, "label file")
    try:
        data = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError for corrupt files
        raise InputError(path, f"unreadable .mat file ({str(exc).splitlines()[0]})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise InputError(path, f"has no {', '.join(repr(k) for k in missing)}")
    return {k: np.asarray(data[k]) for k in keys}


def find_with_suffix(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    """The file ``folder/stem.<suffix>`` for the first suffix that exists (either case), else None."""
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None
