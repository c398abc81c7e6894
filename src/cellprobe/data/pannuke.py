"""PanNuke, official release: ``Fold k/images/fold{k}/images.npy`` (N,256,256,3), ``types.npy`` (N,) tissue
names, ``Fold k/masks/fold{k}/masks.npy`` (N,256,256,6): five per-class instance channels (neoplastic,
inflammatory, connective, dead, epithelial) and a background channel. 40× (about 0.25 µm/px).

The release stores images and masks as float64 holding whole numbers; that is accepted after checking every
value (see :mod:`cellprobe.data.validate`). Arrays are memory-mapped: one sample reads only its own rows.
Instance ids of the five channels are made unique by offsetting each channel past the previous one's maximum
(ids are shifted, never merged or invented). PanNuke gives no source image per patch: the unit of splitting is
the fold, with the 3-fold protocol train/val/test = 1/2/3, 2/1/3, 3/2/1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cellprobe.config import StrictModel
from cellprobe.data.base import Reader, parse_options
from cellprobe.data.io import check_pixels, load_npy, require_file
from cellprobe.data.sample import SampleMeta
from cellprobe.data.validate import RawSample, whole_labels
from cellprobe.errors import InputError

CLASSES = ("neoplastic", "inflammatory", "connective", "dead", "epithelial")
PROTOCOLS = {1: (1, 2, 3), 2: (2, 1, 3), 3: (3, 2, 1)}  # protocol → (train, val, test) fold
FOLDS = (1, 2, 3)


class PanNukeOptions(StrictModel):
    protocol: Literal[1, 2, 3] = 1
    mpp: float = 0.25


def fold_paths(root: Path, k: int) -> tuple[Path, Path, Path]:
    base = root / f"Fold {k}"
    return (base / "images" / f"fold{k}" / "images.npy", base / "images" / f"fold{k}" / "types.npy",
            base / "masks" / f"fold{k}" / "masks.npy")


def folds_of_split(split: str | None, protocol: int, root: Path) -> tuple[int, ...]:
    if split is None or split == "all":
        return tuple(k for k in FOLDS if (root / f"Fold {k}").is_dir()) or FOLDS
    roles = {"train": 0, "val": 1, "test": 2}
    if split in roles:
        return (PROTOCOLS[protocol][roles[split]],)
    m = re.fullmatch(r"(?:fold\s*)?([123])", split.strip().lower())
    if m:
        return (int(m.group(1)),)
    raise InputError(root, f"unknown PanNuke split '{split}' (fold1, fold2, fold3, or train/val/test of a protocol)")


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
        self.protocol = opts.protocol
        self.folds = [self._open_fold(k) for k in folds_of_split(split, opts.protocol, self.root)]
        self._offsets = np.cumsum([0] + [len(f.images) for f in self.folds])

    @classmethod
    def released_splits(cls, root: Path) -> list[str]:
        return [f"fold{k}" for k in FOLDS if (Path(root) / f"Fold {k}").is_dir()]

    def _open_fold(self, k: int) -> _Fold:
        paths = fold_paths(self.root, k)
        if not (self.root / f"Fold {k}").is_dir():
            raise InputError(self.root / f"Fold {k}", f"PanNuke fold {k} is missing (expected {paths[0].relative_to(self.root)})")
        for p, what in zip(paths, ("images", "tissue types", "masks"), strict=True):
            require_file(p, f"PanNuke fold {k} {what}")
        images, masks = load_npy(paths[0]), load_npy(paths[2])
        types = np.asarray(load_npy(paths[1], mmap=False))
        if images.ndim != 4 or images.shape[3] != 3:
            raise InputError(paths[0], f"expected (N, H, W, 3) images, got shape {images.shape}")
        check_pixels(paths[0], int(images.shape[1]), int(images.shape[2]))
        if masks.ndim != 4 or masks.shape[3] != 6 or masks.shape[1:3] != images.shape[1:3]:
            raise InputError(paths[2], f"expected (N, {images.shape[1]}, {images.shape[2]}, 6) masks, got {masks.shape}")
        if not (len(images) == len(masks) == len(types)):
            raise InputError(paths[0].parent, f"mismatched counts: images.npy {len(images)}, masks.npy {len(masks)}, "
                                              f"types.npy {len(types)}")
        return _Fold(k, images, masks, types, paths)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, index: int) -> tuple[_Fold, int]:
        f = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return self.folds[f], index - int(self._offsets[f])

    def sources(self) -> list[str]:
        return [f"fold{f.k}/{j}" for f in self.folds for j in range(len(f.images))]

    def sample_file(self, index: int) -> str:
        fold, j = self._locate(self._index(index))
        return f"{fold.paths[0]}[{j}]"

    def read_raw(self, index: int) -> RawSample:
        fold, j = self._locate(index)
        where = f"{fold.paths[2]}[{j}]"
        inst, cls = masks_to_maps(np.asarray(fold.masks[j]), where)
        meta = SampleMeta(dataset=self.name, name=f"fold{fold.k}_{j:04d}", source=f"fold{fold.k}/{j}", index=index,
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
