"""Reading and checking the arrays to score: every problem is one InputError naming the file (and image).

Arrays are opened memory-mapped, so a 10 GB PanNuke fold is checked and scored image by image. Checks that
need every value (negative ids, class range, integral floats) run per image where the image is scored.

What is checked where:
- every array: integer ids (bool masks are refused; floats only where a release stores them, and only
  whole finite values), no negative id; at least one image, of a non-zero size.
- class ids, both sides: within the declared classes (``class_names``), else within those of the truth;
  an id beyond them is refused before anything is sized by it.
- instance ids of any magnitude: relabelled 1..n in their order (the metrics do not depend on the values).
- the truth, as strictly as the dataset readers: inside an instance exactly one class, 1..C; no class pixel
  outside every instance (CoNIC layout); no pixel in two class channels (PanNuke masks). When a CoNIC truth
  (or a prediction with out-of-range classes) reads correctly with its two channels exchanged, the error says
  that the channels look swapped.
- predictions only what the metrics need: a class map may split an instance or leave part of it unclassified
  (0), class pixels outside every instance are not part of any instance (as in the official code), and PanNuke
  channels may overlap (later channels overwrite earlier ones, as the official ``binarize``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellprobe.data.info import MAX_CLASSES, class_names_problem
from cellprobe.data.sample import int32_ids
from cellprobe.errors import InputError, not_a_file

_INT64_LIMIT = 2.0**63
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _read_npy(path: Path, what: str, mmap: bool) -> np.ndarray:
    """Read (or memory-map) a .npy file; the format is checked first so that numpy's own messages (which
    suggest loading pickled data unsafely) never reach the user."""
    problem = not_a_file(path)
    if problem == "is a folder, not a file":
        raise InputError(path, f"{what}: is a folder, expected a .npy file")
    if problem is not None:
        raise InputError(path, f"{what}: {problem}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
            if head[: len(_ZIP_MAGIC)] == _ZIP_MAGIC:
                raise InputError(path, f"{what}: expected a single .npy array, got an .npz archive")
            if head != _NPY_MAGIC:
                raise InputError(path, f"{what}: not a readable .npy array (the file is not in NumPy .npy format)")
            handle.seek(0)
            dtype = _header_dtype(handle)
    except OSError as exc:
        raise InputError(path, f"{what}: not a readable .npy array ({exc.strerror or type(exc).__name__})") from None
    if dtype is not None and dtype.hasobject:
        raise InputError(path, f"{what}: not a readable .npy array: it holds Python objects (pickled data), "
                               "which cellprobe never loads; store a plain numeric array")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OverflowError, MemoryError) as exc:  # a header declaring a negative or impossibly large shape
        raise InputError(path, f"{what}: not a readable .npy array (corrupt header: {exc})") from None
    except (ValueError, OSError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "pickle" in detail.lower() or "object" in detail.lower():
            raise InputError(path, f"{what}: not a readable .npy array: it holds Python objects (pickled data), "
                                   "which cellprobe never loads; store a plain numeric array") from None
        raise InputError(path, f"{what}: not a readable .npy array ({detail})") from None


def _header_dtype(handle) -> np.dtype | None:
    """The dtype in a .npy header (versions 1 and 2), or None when it cannot be read here (np.load decides)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            return fmt.read_array_header_1_0(handle)[2]
        if version == (2, 0):
            return fmt.read_array_header_2_0(handle)[2]
    except (ValueError, EOFError):
        return None
    return None


def load_npy(path: str | Path, what: str) -> np.ndarray:
    """Open a .npy file memory-mapped; missing, unreadable, truncated, non-.npy or object files are
    InputErrors naming the file."""
    return _read_npy(Path(path), what, mmap=True)


def _require_numeric(arr: np.ndarray, path: str | Path, what: str, allow_integral_float: bool) -> None:
    kind = arr.dtype.kind
    if kind in "iu":
        return
    if kind == "b":
        raise InputError(path, f"{what}: boolean masks, not integer ids; store instance and class ids as integers")
    if kind == "f" and allow_integral_float:
        return
    if kind == "f":
        raise InputError(path, f"{what}: float ids ({arr.dtype}); instance and class ids must be integers")
    raise InputError(path, f"{what}: unsupported dtype {arr.dtype}; ids must be integers")


def _require_images(arr: np.ndarray, path: str | Path) -> None:
    if arr.shape[0] == 0:
        raise InputError(path, "no images: nothing to score")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise InputError(path, f"images of size {arr.shape[1]}×{arr.shape[2]}: nothing to score")


def check_conic_stack(arr: np.ndarray, path: str | Path) -> None:
    """Shape and dtype of a CoNIC labels array: (N, H, W, 2) integers (instance id, class id), N, H, W > 0."""
    if arr.ndim != 4:
        raise InputError(path, f"expected (N, H, W, 2) labels, got shape {arr.shape}")
    if arr.shape[-1] != 2:
        raise InputError(path, f"expected 2 channels (instance id, class id), got {arr.shape[-1]}")
    _require_numeric(arr, path, "labels", allow_integral_float=False)
    _require_images(arr, path)


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
    _require_images(arr, path)


def check_same_layout(true: np.ndarray, pred: np.ndarray, true_path, pred_path) -> None:
    """Same number of images and same image size in truth and prediction."""
    if true.shape[0] != pred.shape[0]:
        raise InputError(pred_path, f"{pred.shape[0]} images, but the truth ({true_path}) has {true.shape[0]}")
    if true.shape[1:] != pred.shape[1:]:
        raise InputError(pred_path, f"shape {pred.shape[1:]} per image, the truth ({true_path}) has {true.shape[1:]}")


def check_class_names(class_names: Sequence[str] | None) -> list[str] | None:
    """The declared class list: unique non-empty names (strings), at most :data:`MAX_CLASSES` of them."""
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)):
        raise InputError(None, f"class names: expected a list of names, got the string {class_names!r}")
    names = list(class_names)
    problem = class_names_problem(names) if names else None  # an empty list declares no class: allowed here
    if problem is not None:
        raise InputError(None, f"class names: {problem}")
    return names


def check_num_classes(num_classes: int) -> int:
    """A number of classes: an integer in 0..:data:`MAX_CLASSES`."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise InputError(None, f"number of classes: expected an integer, got {num_classes!r}")
    if not 0 <= num_classes <= MAX_CLASSES:
        raise InputError(None, f"number of classes: {num_classes} is outside 0..{MAX_CLASSES}")
    return int(num_classes)


def as_ids(arr: np.ndarray, where: str, what: str, max_value: int | None = None,
           classes_from: str | None = None) -> np.ndarray:
    """Checked integer ids of one image: int64 when the input is floating point holding integers, else the
    input's integer type. ``max_value``: largest class id allowed (``classes_from`` says where the class list
    came from, for the message)."""
    arr = np.asarray(arr)
    kind = arr.dtype.kind
    if kind == "b":
        raise InputError(where, f"{what}: boolean mask, not integer ids; store ids as integers")
    if kind not in "iuf":
        raise InputError(where, f"{what}: unsupported dtype {arr.dtype}; ids must be integers")
    if arr.size == 0:
        return np.asarray(arr, np.int64)
    if kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(arr) & (arr == np.floor(arr)))
        if bad.any():
            value = float(arr[bad].flat[0])
            raise InputError(where, f"{what}: non-integral id {value!r}")
        huge = np.abs(arr) >= _INT64_LIMIT
        if huge.any():
            raise InputError(where, f"{what}: id {float(arr[huge].flat[0])!r} is too large for an integer id")
        arr = arr.astype(np.int64)
    low = arr.min()
    if low < 0:
        raise InputError(where, f"{what}: negative id {int(low)}")
    if max_value is not None:
        high = int(arr.max())
        if high > max_value:
            origin = f"; {classes_from}" if classes_from else ""
            raise InputError(where, f"{what}: class id {high} exceeds the number of classes ({max_value}){origin}")
        if arr.dtype.kind == "u" and arr.dtype.itemsize >= 8:  # values <= MAX_CLASSES: exact in int64
            arr = arr.astype(np.int64)
    return arr


def instance_ids(arr: np.ndarray, where: str, what: str = "instance ids") -> np.ndarray:
    """:func:`as_ids` for instance ids of any magnitude: ids above 2**31 - 1 are relabelled 1..n in their
    order (memory bounded by the image, metrics unchanged: they depend only on which pixels share an id and on
    the order of the ids)."""
    return int32_ids(as_ids(arr, where, what))


def swapped_channels(inst: np.ndarray, cls: np.ndarray, num_classes: int | None = None) -> bool:
    """Whether (inst, cls), wrong as given, reads as valid labels with the two channels exchanged: channel 1
    holding instance ids and channel 0 their classes (one class 1..C per instance, nothing outside them), with
    more instances than classes (with as many, either reading fits: nothing is claimed)."""
    inst, cls = np.asarray(inst), np.asarray(cls)
    if inst.dtype.kind not in "iu" or cls.dtype.kind not in "iu" or inst.size == 0:
        return False
    if inst.min() < 0 or cls.min() < 0:
        return False
    top = int(inst.max())
    if top == 0 or top > (MAX_CLASSES if num_classes is None else min(num_classes, MAX_CLASSES)):
        return False
    on_inst, on_cls = inst > 0, cls > 0
    if not np.array_equal(on_inst, on_cls):  # a class pixel outside an instance, or an instance of class 0
        return False
    ids, classes = cls[on_cls], inst[on_cls]
    order = np.argsort(ids, kind="stable")
    ids, classes = ids[order], classes[order]
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    if starts.size <= np.unique(classes).size:
        return False
    return bool(np.array_equal(np.minimum.reduceat(classes, starts), np.maximum.reduceat(classes, starts)))


def explain_swap(problem: str, inst: np.ndarray, cls: np.ndarray, num_classes: int | None = None) -> str:
    """``problem``, led by the likely cause when the channels of (inst, cls) look swapped."""
    if swapped_channels(inst, cls, num_classes):
        return (f"the two channels look swapped: channel 1 holds what look like instance ids and channel 0 their "
                f"classes ({problem}); the layout is channel 0 = instance id, channel 1 = class id")
    return problem


def truth_problem(inst: np.ndarray, cls: np.ndarray, seg) -> str | None:
    """Why a true (instance map, class map) pair is not valid labels, or None: class pixels outside every
    instance, an instance with class 0 pixels, an instance with several classes. ``seg``: the
    :class:`~cellprobe.metrics.labels.Segments` of the pair; ``inst``/``cls`` the maps as given (ids
    reported as in the file)."""
    h, w = seg.shape
    stray = (inst == 0) & (cls != 0)
    if stray.any():
        y, x = np.unravel_index(int(np.argmax(stray)), (h, w))
        return f"class {int(cls[y, x])} pixels outside every instance (first at row {y}, column {x})"

    def raw_id(segs: np.ndarray) -> tuple[int, int, int]:
        """Raw id and first pixel (row, column) of the instance made of segments ``segs`` (0-based)."""
        flat = int(np.argmax(np.isin(seg.seg.dense, segs + 1)))
        y, x = divmod(flat, w)
        return int(inst[y, x]), y, x

    unclassed = np.flatnonzero(seg.seg_cls == 0)
    if unclassed.size:
        ident, y, x = raw_id(np.flatnonzero(seg.seg_inst == seg.seg_inst[unclassed[0]]))
        return (f"instance {ident} (at row {y}, column {x}) has class 0 pixels; inside an instance the class must "
                "be 1 or more (for data without classes, set class 1 inside every instance)")
    if seg.splits:
        parts = np.bincount(seg.seg_inst, minlength=seg.n_inst)
        first = int(np.flatnonzero(parts > 1)[0])
        segs = np.flatnonzero(seg.seg_inst == first)
        ident, y, x = raw_id(segs)
        found = sorted(int(c) for c in seg.seg_cls[segs])
        return f"instance {ident} (at row {y}, column {x}) has several classes {found}"
    return None


def pannuke_truth_problem(channels: np.ndarray) -> str | None:
    """Why true PanNuke class channels (H, W, C) of instance ids are not valid, or None: a pixel in two
    class channels."""
    claimed = (channels > 0).sum(axis=-1)
    if claimed.max(initial=0) > 1:
        y, x = np.unravel_index(int(np.argmax(claimed > 1)), claimed.shape)
        which = [int(c) for c in np.flatnonzero(channels[y, x] > 0)]
        return f"pixel (row {y}, column {x}) belongs to several class channels {which}"
    return None


def load_types(path: str | Path, n_images: int) -> np.ndarray:
    """PanNuke tissue names (types.npy): one string per image."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"tissue types: {not_a_file(path)} (the PanNuke truth folder needs types.npy)")
    types = np.asarray(_read_npy(path, "tissue types", mmap=False))
    if types.ndim != 1 or types.dtype.kind not in "US":
        raise InputError(path, f"tissue types: expected a 1-D array of strings, got {types.dtype} {types.shape}")
    if types.shape[0] != n_images:
        raise InputError(path, f"{types.shape[0]} tissue types for {n_images} images")
    from cellprobe.data.pannuke import check_tissue_names

    check_tissue_names(types, path)
    return types.astype(str)
