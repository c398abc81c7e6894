"""PanNuke, official release: ``Fold k/images/fold{k}/images.npy`` (N,256,256,3), ``types.npy`` (N,) tissue
names, ``Fold k/masks/fold{k}/masks.npy`` (N,256,256,6): five per-class instance channels (neoplastic,
inflammatory, connective, dead, epithelial) and a background channel. 40× (about 0.25 µm/px).

The release stores images and masks as float64 holding whole numbers; that is accepted after checking every
value (see :mod:`cellprobe.data.validate`). Arrays are memory-mapped: one sample reads only its own rows.
Instance ids of the five channels are made unique by offsetting each channel past the previous one's maximum
(ids are shifted, never merged or invented). PanNuke gives no source image per patch: the unit of splitting is
the fold, with the 3-fold protocol train/val/test = 1/2/3, 2/1/3, 3/2/1.

Or a ``split_file`` pools the three folds and splits them its own way: CISCA's published split
(``cellprobe data download cisca-splits``: ``pannuke_folds.csv``, columns ``img_id,fold``) names patch ``i``
(0-based row) of fold ``k`` ``pannuke_<tissue>_fold<k>_<i>``, the tissue as in ``types.npy``, lower-case; its
folds ``0`` (train, 5,688 patches; patches listed several times are oversampled, see
:meth:`PanNukeDataset.repeats`), ``1`` (validation, 632) and ``2`` (test, 1,581) are the splits, and samples
are named as in the file.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import model_validator

from cellprobe.config import StrictModel, int_choice
from cellprobe.data.base import Reader, parse_options
from cellprobe.data.info import Mpp
from cellprobe.data.io import check_pixels, dataset_file, load_npy
from cellprobe.data.sample import SampleMeta
from cellprobe.data.splits import SplitOptions, select_split
from cellprobe.data.validate import DataWarning, RawSample, whole_labels
from cellprobe.errors import InputError

CLASSES = ("neoplastic", "inflammatory", "connective", "dead", "epithelial")
PROTOCOLS = {1: (1, 2, 3), 2: (2, 1, 3), 3: (3, 2, 1)}  # protocol → (train, val, test) fold
FOLDS = (1, 2, 3)
Protocol = int_choice(*PROTOCOLS)  # an integer: 3.0 and true are refused, as Literal[1, 2, 3] would take them


class PanNukeOptions(StrictModel):
    """``protocol``: which released fold trains, validates and tests (default 1); ``split_file``: a split of
    the pooled folds instead (CISCA's naming, see the module docstring); the two exclude each other."""

    protocol: Protocol | None = None
    split_file: Path | None = None
    mpp: Mpp = 0.25

    @model_validator(mode="after")
    def _one_split(self) -> PanNukeOptions:
        if self.protocol is not None and self.split_file is not None:
            raise ValueError("give protocol or split_file, not both (a split file defines the splits itself)")
        return self


NAME_PATTERN = re.compile(r"pannuke_(?P<tissue>.+)_fold(?P<fold>\d+)_(?P<row>\d+)")


def patch_name(tissue: str, k: int, j: int) -> str:
    """CISCA's name of row ``j`` of fold ``k`` (tissue as in ``types.npy``): ``pannuke_<tissue>_fold<k>_<j>``."""
    return f"pannuke_{str(tissue).lower()}_fold{k}_{j}"


def check_tissue_names(types: np.ndarray, path: Path) -> None:
    """PanNuke's tissue names (types.npy) as the official scores group them: an empty name, or one with spaces
    around it (' Colon' beside 'Colon'), would be a tissue of its own in the mean over tissues (bPQ, mPQ)."""
    for i, name in enumerate(np.asarray(types).astype(str).tolist()):
        if not name or name != name.strip():
            raise InputError(f"{path}[{i}]", f"tissue type {name!r} is empty or has spaces around it: the scores "
                                             "averaged over tissues would count it as a tissue of its own")


def fold_paths(root: Path, k: int) -> tuple[Path, Path, Path]:
    base = root / f"Fold {k}"
    return (base / "images" / f"fold{k}" / "images.npy", base / "images" / f"fold{k}" / "types.npy",
            base / "masks" / f"fold{k}" / "masks.npy")


def folds_of_split(split: str | None, protocol: int, root: Path) -> tuple[int, ...]:
    if split is None or split == "all":
        present = tuple(k for k in FOLDS if (root / f"Fold {k}").is_dir())
        if present and len(present) < len(FOLDS):  # a partial download read as the release would be silent
            missing = [f"Fold {k}" for k in FOLDS if k not in present]
            warnings.warn(f"{root}: {', '.join(missing)} of the release missing: reading "
                          f"{', '.join(f'Fold {k}' for k in present)} only", DataWarning, stacklevel=3)
        return present or FOLDS
    roles = {"train": 0, "val": 1, "test": 2}
    if split in roles:
        return (PROTOCOLS[protocol][roles[split]],)
    m = re.fullmatch(r"fold([123])", split)  # one spelling per fold, as cell names and run configs record it
    if m:
        return (int(m.group(1)),)
    raise InputError(root, f"unknown PanNuke split '{split}' (fold1, fold2, fold3, or train/val/test of a protocol)")


def _refuse_stray_folds(root: Path) -> None:
    """A folder named like a fold that is not one of the release's ``Fold 1``..``Fold 3`` ('fold 2', 'Fold 4',
    'Fold2') would be passed over without a word: refused, naming it."""
    for entry in sorted(root.iterdir()) if root.is_dir() else ():
        if entry.is_dir() and re.fullmatch(r"fold\s*\d+", entry.name.lower()) and entry.name not in (
                f"Fold {k}" for k in FOLDS):
            raise InputError(entry, f"is not a PanNuke fold folder (the release's are {', '.join(f'Fold {k}' for k in FOLDS)}): "
                                    "rename it, or move it out of the dataset")


@dataclass
class _Fold:
    k: int
    images: np.ndarray
    masks: np.ndarray
    types: np.ndarray
    paths: tuple[Path, Path, Path]


class PanNukeDataset(Reader):
    format_name = "pannuke"
    name = "pannuke"
    class_names = CLASSES
    allow_float_image = True
    allow_float_labels = True

    def __init__(self, root: Path, split: str | None = None, **options) -> None:
        super().__init__(root, split)
        opts = parse_options(PanNukeOptions, options, self.root)
        self.mpp = opts.mpp
        self.protocol = opts.protocol or 1
        self.split_file = opts.split_file
        _refuse_stray_folds(self.root)
        if opts.split_file is None:
            self.folds = [self._open_fold(k) for k in folds_of_split(split, self.protocol, self.root)]
        else:  # the split file's folds pool the release's three
            self.folds = [self._open_fold(k) for k in FOLDS]
        self._offsets = np.cumsum([0] + [len(f.images) for f in self.folds])
        self._repeats: np.ndarray | None = None
        if opts.split_file is None:
            self.rows = np.arange(int(self._offsets[-1]))
            return
        names = [patch_name(t, f.k, j) for f in self.folds for j, t in enumerate(f.types)]
        selected = select_split(names, names, split, SplitOptions(split_file=opts.split_file), self.root,
                                explain=self._why_unknown)
        self.rows = selected.rows
        self._repeats = selected.repeats if selected.oversampled else None

    @classmethod
    def released_splits(cls, root: Path) -> list[str]:
        return [f"fold{k}" for k in FOLDS if (Path(root) / f"Fold {k}").is_dir()]

    def _open_fold(self, k: int) -> _Fold:
        paths = fold_paths(self.root, k)
        if not (self.root / f"Fold {k}").is_dir():
            raise InputError(self.root / f"Fold {k}", f"PanNuke fold {k} is missing (expected {paths[0].relative_to(self.root)})")
        for p, what in zip(paths, ("images", "tissue types", "masks"), strict=True):
            dataset_file(p, self.root, f"PanNuke fold {k} {what}")
        images, masks = load_npy(paths[0]), load_npy(paths[2])
        types = np.asarray(load_npy(paths[1], mmap=False))
        if images.ndim != 4 or images.shape[3] != 3:
            raise InputError(paths[0], f"expected (N, H, W, 3) images, got shape {images.shape}")
        check_pixels(paths[0], int(images.shape[1]), int(images.shape[2]))
        if masks.ndim != 4 or masks.shape[3] != 6 or masks.shape[1:3] != images.shape[1:3]:
            raise InputError(paths[2], f"expected (N, {images.shape[1]}, {images.shape[2]}, 6) masks, got {masks.shape}")
        check_tissue_names(types, paths[1])
        if not (len(images) == len(masks) == len(types)):
            raise InputError(paths[0].parent, f"mismatched counts: images.npy {len(images)}, masks.npy {len(masks)}, "
                                              f"types.npy {len(types)}")
        return _Fold(k, images, masks, types, paths)

    def _why_unknown(self, name: str) -> str | None:
        """Why a split file's patch name matches no patch of this release (for its error line)."""
        m = NAME_PATTERN.fullmatch(name)
        if m is None:
            return "not a PanNuke patch name pannuke_<tissue>_fold<k>_<row>"
        k, j = int(m["fold"]), int(m["row"])
        fold = next((f for f in self.folds if f.k == k), None)
        if fold is None:
            return f"PanNuke has folds {', '.join(map(str, FOLDS))}"
        if j >= len(fold.types):
            return f"Fold {k} has {len(fold.types)} patches (rows 0..{len(fold.types) - 1})"
        if str(fold.types[j]).lower() != m["tissue"]:
            return f"row {j} of Fold {k} is tissue '{fold.types[j]}' in {fold.paths[1]}, not '{m['tissue']}'"
        return f"the name of row {j} of Fold {k} is '{patch_name(fold.types[j], k, j)}'"

    def __len__(self) -> int:
        return len(self.rows)

    def _locate(self, index: int) -> tuple[_Fold, int]:
        pooled = int(self.rows[index])
        f = int(np.searchsorted(self._offsets, pooled, side="right") - 1)
        return self.folds[f], pooled - int(self._offsets[f])

    def _located(self) -> list[tuple[_Fold, int]]:
        return [self._locate(i) for i in range(len(self))]

    def sources(self) -> list[str]:
        return [f"fold{f.k}/{j}" for f, j in self._located()]

    def names(self) -> list[str]:
        """The sample names, in order: the split file's names (``pannuke_<tissue>_fold<k>_<row>``) when one is
        given, else ``fold<k>_<row>``."""
        return [self._name(f, j) for f, j in self._located()]

    def _name(self, fold: _Fold, j: int) -> str:
        return f"fold{fold.k}_{j:04d}" if self.split_file is None else patch_name(fold.types[j], fold.k, j)

    def repeats(self) -> np.ndarray | None:
        return None if self._repeats is None else self._repeats.copy()

    def stored_image(self, index: int) -> tuple[Path, str]:
        fold, j = self._locate(self._index(index))
        return fold.paths[0], str(j)

    def sample_file(self, index: int) -> str:
        fold, j = self._locate(self._index(index))
        return f"{fold.paths[0]}[{j}]"

    def read_raw(self, index: int) -> RawSample:
        fold, j = self._locate(index)
        where = f"{fold.paths[2]}[{j}]"
        inst, cls = masks_to_maps(np.asarray(fold.masks[j]), where)
        meta = SampleMeta(dataset=self.name, name=self._name(fold, j), source=f"fold{fold.k}/{j}", index=index,
                          tissue=str(fold.types[j]), mpp=self.mpp, extra={"fold": str(fold.k)})
        return RawSample(np.asarray(fold.images[j]), inst, cls, meta, where, image_where=f"{fold.paths[0]}[{j}]")


def masks_to_maps(masks: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(inst, cls) from a PanNuke (H, W, 6) mask: class c+1 where channel c (< 5) is non-zero; each channel's
    ids offset past the previous channels' maximum. A pixel claimed by two class channels is an error."""
    channels = whole_labels(masks[..., :5], where, "mask values", allow_float=True)
    if channels.size and channels.min() < 0:
        raise InputError(where, f"negative instance id {int(channels.min())}")
    claimed = (channels > 0).sum(axis=2)
    if np.any(claimed > 1):
        y, x = np.argwhere(claimed > 1)[0]
        raise InputError(where, f"pixel ({y}, {x}) belongs to several class channels")
    inst = np.zeros(channels.shape[:2], dtype=np.int64)
    cls = np.zeros(channels.shape[:2], dtype=np.uint8)
    offset = 0
    for c in range(5):
        ch = channels[..., c]
        on = ch > 0
        if on.any():
            inst[on] = ch[on] + offset
            cls[on] = c + 1
            offset += int(ch.max())
    return inst, cls
