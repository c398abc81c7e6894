"""CytoDArk0 (Nissl-stained mammalian brain; Vadori et al. 2024, Zenodo record 13694738), as released in
``cytoDArk0.zip``: ``cytoDArk0/20x/1024x1024/`` and ``cytoDArk0/40x/2048x2048/``, each with ``image/<id>.png``
(RGB), ``label/<id>.tiff`` (instance ids), ``graymask4/<id>.png`` (a semantic mask, not used here) and
``folds.csv`` (``img_id``, ``fold`` ∈ {0, 1, 2}). All cells (neurons and glia) form one class.

Samples are 256² crops: ``tiled`` (default; a grid covering each image) or ``random`` (seeded). Splits are the
folds of ``folds.csv``: ``fold0``/``fold1``/``fold2``, with ``train``/``val``/``test`` naming folds 0/1/2 (the
reading of other public loaders of this release). µm/px is nominal for the objective (0.5 at 20×, 0.25 at 40×).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from cellprobe.data.base import WindowOptions, parse_options
from cellprobe.data.info import Mpp
from cellprobe.data.io import (
    csv_row,
    dataset_file,
    find_with_suffix,
    listed_name,
    read_label_image,
    read_table,
)
from cellprobe.data.validate import DataWarning
from cellprobe.data.wholeimage import Item, WholeImageReader
from cellprobe.errors import InputError

MAGNIFICATIONS = {"20x": ("1024x1024", 0.5), "40x": ("2048x2048", 0.25)}
ROLES = {"train": 0, "val": 1, "test": 2}


class CytoDArk0Options(WindowOptions):
    crop: Literal["none", "tiled", "random"] = "tiled"
    magnification: Literal["20x", "40x"] = "20x"
    mpp: Mpp | None = None  # default: nominal for the magnification


def cytodark0_base(root: Path, magnification: str) -> Path:
    root = Path(root)
    size = MAGNIFICATIONS[magnification][0]
    found = [c for c in (root / magnification / size, root / "cytoDArk0" / magnification / size, root / size, root)
             if (c / "folds.csv").is_file() and (c / "image").is_dir()]
    if len(found) > 1:
        raise InputError(root, f"holds {len(found)} CytoDArk0 layouts for {magnification} "
                               f"({', '.join(str(c) for c in found)}): which one is meant would be a guess; give "
                               "the folder of one")
    if found:
        return found[0]
    raise InputError(root, f"no CytoDArk0 layout for {magnification} here (expected "
                           f"[cytoDArk0/]{magnification}/{size}/image, label, folds.csv)")


def read_folds(path: Path, root: Path) -> dict[str, int]:
    """img_id → fold of a ``folds.csv``. Each img_id names files under the folder of ``path`` (``image/<id>.png``,
    ``label/<id>.tiff``): one that would leave it, a fold that is not an integer or an img_id listed twice is an
    error naming the file and row."""
    dataset_file(path, root, "folds file")  # inside the dataset folder ``root``, links resolved
    table = read_table(path, "folds file")
    if not {"img_id", "fold"} <= set(table.columns):
        raise InputError(path, f"needs columns img_id and fold; has {', '.join(table.columns)}")
    folds: dict[str, int] = {}
    rows: dict[str, int] = {}
    for i, (img_id, fold) in enumerate(zip(table["img_id"], table["fold"], strict=True)):
        where = csv_row(path, i)
        listed_name(img_id, path.parent / "image", path.parent, where)
        if img_id in folds:
            raise InputError(where, f"img_id '{img_id}' is listed twice (also row {rows[img_id]})")
        if not re.fullmatch(r"0|[1-9][0-9]*", fold):  # int() also reads ' 1', '01', '1_0' and '١' (Arabic-Indic)
            raise InputError(where, f"fold '{fold}' is not a plain whole number (digits 0-9, no sign, spaces or "
                                    "leading zeros)")
        folds[img_id] = int(fold)
        rows[img_id] = i
    return folds


def fold_of_split(split: str, path: Path, available: set[int]) -> int:
    """The fold a split name selects: ``fold<k>`` spelled exactly (one spelling per fold, as the bench's cell
    names and the run's config record it: no case, space, leading zero or non-ASCII digit variants) or a role."""
    m = re.fullmatch(r"fold(0|[1-9][0-9]*)", split)
    if split in ROLES:
        fold = ROLES[split]
    elif m:
        fold = int(m.group(1))
    else:
        raise InputError(path, f"unknown CytoDArk0 split '{split}' (fold0, fold1, fold2, or train/val/test)")
    if fold not in available:
        raise InputError(path, f"fold {fold} is missing (folds: {', '.join(map(str, sorted(available)))})")
    return fold


class CytoDArk0Dataset(WholeImageReader):
    format_name = "cytodark0"
    name = "cytodark0"
    class_names = ("cell",)

    def __init__(self, root: Path, split: str | None = None, **options) -> None:
        super().__init__(root, split)
        opts = parse_options(CytoDArk0Options, options, self.root)
        self.magnification = opts.magnification
        self.mpp = opts.mpp if opts.mpp is not None else MAGNIFICATIONS[opts.magnification][1]
        base = cytodark0_base(self.root, opts.magnification)
        folds = read_folds(base / "folds.csv", self.root)
        wanted = None if split in (None, "all") else fold_of_split(split, base / "folds.csv", set(folds.values()))
        items = []
        for img_id, fold in folds.items():
            if wanted is not None and fold != wanted:
                continue
            image = find_with_suffix(base / "image", img_id, (".png",))
            label = find_with_suffix(base / "label", img_id, (".tiff", ".tif"))
            if image is None or label is None:
                missing = base / ("image" if image is None else "label") / img_id
                raise InputError(missing, "missing file of an image listed in folds.csv")
            items.append(Item(img_id, img_id, image, label, tissue="brain",
                              extra={"fold": str(fold), "magnification": opts.magnification}))
        read = {it.name: (it.image.name, it.label.name) for it in items}
        # every file left out is said: not in folds.csv, or not the file read for its img_id
        for k, (sub, what) in enumerate((("image", "images"), ("label", "label maps"))):
            left = sorted(p.name for p in (base / sub).iterdir()
                          if p.is_file() and not p.name.startswith(".") and (
                              p.stem not in folds or (p.stem in read and p.name != read[p.stem][k])))
            if left:
                warnings.warn(f"{base / sub}: {len(left)} {what} not in folds.csv (or not the <img_id>.png / "
                              f".tiff read) are left out (e.g. {left[0]})", DataWarning, stacklevel=2)
        self._setup(items, WindowOptions(**opts.model_dump(include=set(WindowOptions.model_fields))))

    @classmethod
    def released_splits(cls, root: Path) -> list[str]:
        try:
            base = cytodark0_base(Path(root), "20x")
        except InputError:
            return []
        return [f"fold{k}" for k in sorted(set(read_folds(base / "folds.csv", Path(root)).values()))]

    def load_labels(self, item: Item) -> tuple[np.ndarray, np.ndarray | None]:
        return read_label_image(item.label), None
