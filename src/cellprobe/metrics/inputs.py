"""Reading and checking the arrays to score: every problem is one InputError naming the file (and image).

Arrays are opened memory-mapped, so a 10 GB PanNuke fold is checked and scored image by image. Checks that
need every value (negative ids, class range, integral floats) run per image where the image is scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellprobe.errors import InputError


def load_npy(path: str | Path, what: str) -> np.ndarray:
    """Open a .npy file memory-mapped; missing, unreadable, truncated or pickled files are InputErrors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what}: no such file")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"{what}: not a readable .npy array ({detail})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise InputError(path, f"{what}: expected a single .npy array, got an .npz archive")
    return arr


def _require_numeric(arr: np.ndarray, path: str | Path, what: str, allow_integral_float: bool) -> None:
    kind = arr.dtype.kind
    if kind in "iub":
        return
    if kind == "f" and allow_integral_float:
        return
    if kind == "f":
        raise InputError(path, f"{what}: float ids ({arr.dtype}); instance and class ids must be integers")
    raise InputError(path, f"{what}: unsupported dtype {arr.dtype}; ids must be integers")


def check_conic_stack(arr: np.ndarray, path: str | Path) -> None:
    """Shape and dtype of a CoNIC labels array: (N, H, W, 2) integers (instance id, class id)."""
    if arr.ndim != 4:
        raise InputError(path, f"expected (N, H, W, 2) labels, got shape {arr.shape}")
    if arr.shape[-1] != 2:
        raise InputError(path, f"expected 2 channels (instance id, class id), got {arr.shape[-1]}")
    _require_numeric(arr, path, "labels", allow_integral_float=False)


def check_pannuke_stack(arr: np.ndarray, path: str | Path, num_classes: int) -> None:
    """Shape and dtype of PanNuke masks: (N, H, W, num_classes + 1), instance ids per class channel."""
    if arr.ndim != 4:
        raise InputError(path, f"expected (N, H, W, {num_classes + 1}) masks, got shape {arr.shape}")
    if arr.shape[-1] != num_classes + 1:
        raise InputError(
            path, f"expected {num_classes + 1} channels ({num_classes} classes + background), got {arr.shape[-1]}"
        )
    # The official release stores masks as float64 holding integer ids: accepted when every value is integral.
    _require_numeric(arr, path, "masks", allow_integral_float=True)


def check_same_layout(true: np.ndarray, pred: np.ndarray, true_path, pred_path) -> None:
    """Same number of images and same image size in truth and prediction."""
    if true.shape[0] != pred.shape[0]:
        raise InputError(pred_path, f"{pred.shape[0]} images, but the truth ({true_path}) has {true.shape[0]}")
    if true.shape[1:] != pred.shape[1:]:
        raise InputError(pred_path, f"shape {pred.shape[1:]} per image, the truth ({true_path}) has {true.shape[1:]}")


def as_ids(arr: np.ndarray, where: str, what: str, max_value: int | None = None) -> np.ndarray:
    """Checked integer ids of one image (int64 when the input is floating point holding integers)."""
    if arr.size == 0:
        return np.asarray(arr, np.int64)
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ints = arr.astype(np.int64)  # NaN/inf cast to garbage, caught by the round trip below
        bad = ints != arr
        if bad.any():
            value = float(arr[bad].flat[0])
            raise InputError(where, f"{what}: non-integral id {value!r}")
        arr = ints
    elif arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind not in "iu":
        raise InputError(where, f"{what}: unsupported dtype {arr.dtype}; ids must be integers")
    low = arr.min()
    if low < 0:
        raise InputError(where, f"{what}: negative id {int(low)}")
    if max_value is not None:
        high = arr.max()
        if high > max_value:
            raise InputError(where, f"{what}: class id {int(high)} exceeds the number of classes ({max_value})")
    return arr


def load_types(path: str | Path, n_images: int) -> np.ndarray:
    """PanNuke tissue names (types.npy): one string per image."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "tissue types: no such file (the PanNuke truth folder needs types.npy)")
    try:
        types = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"tissue types: not a readable .npy array of strings ({detail})") from None
    if types.ndim != 1 or types.dtype.kind not in "US":
        raise InputError(path, f"tissue types: expected a 1-D array of strings, got {types.dtype} {types.shape}")
    if types.shape[0] != n_images:
        raise InputError(path, f"{types.shape[0]} tissue types for {n_images} images")
    return types.astype(str)
